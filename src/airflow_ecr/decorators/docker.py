"""``@task.ecr_docker``: ``@task.docker`` for images stored in Amazon ECR."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ecr._compat import push_xcom, task_decorator_factory
from airflow_ecr.hooks._docker_compat import DockerDecoratedOperator
from airflow_ecr.operators.docker import ECR_TEMPLATE_FIELDS, EcrDockerOperator

if TYPE_CHECKING:
    from airflow_ecr._compat import TaskDecorator


class _EcrDockerDecoratedOperator(DockerDecoratedOperator, EcrDockerOperator):
    """Runs a Python callable in a container from an ECR image (see ``@task.ecr_docker``)."""

    custom_operator_name = "@task.ecr_docker"
    template_fields: Sequence[str] = (*DockerDecoratedOperator.template_fields, *ECR_TEMPLATE_FIELDS)

    if not hasattr(DockerDecoratedOperator, "xcom_push"):  # Airflow 3.0 (see _compat.push_xcom)
        xcom_push = staticmethod(push_xcom)


def ecr_docker_task(
    python_callable: Callable | None = None,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> TaskDecorator:
    """
    Wrap a function into a task that runs it in a container from an Amazon ECR image.

    Takes every ``@task.docker`` argument plus ``aws_conn_id``, ``region_name``, ``registry_id``
    and ``registry_ids`` (see :class:`~airflow_ecr.operators.docker.EcrDockerOperator`).

    :param python_callable: the function to run.
    :param multiple_outputs: unroll a returned dict into several XCom values.
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_EcrDockerDecoratedOperator,
        **kwargs,
    )
