"""``@task.ecr_kubernetes``: ``@task.kubernetes`` for images stored in Amazon ECR."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ecr._compat import task_decorator_factory
from airflow_ecr.kubernetes._provider import _KubernetesDecoratedOperator
from airflow_ecr.operators.kubernetes import ECR_KUBERNETES_TEMPLATE_FIELDS, EcrKubernetesPodOperator

if TYPE_CHECKING:
    from airflow_ecr._compat import TaskDecorator


class _EcrKubernetesDecoratedOperator(_KubernetesDecoratedOperator, EcrKubernetesPodOperator):
    """Runs a Python callable in a pod from an ECR image (see ``@task.ecr_kubernetes``)."""

    custom_operator_name = "@task.ecr_kubernetes"
    template_fields: Sequence[str] = (*_KubernetesDecoratedOperator.template_fields, *ECR_KUBERNETES_TEMPLATE_FIELDS)


def ecr_kubernetes_task(
    python_callable: Callable | None = None,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> TaskDecorator:
    """
    Wrap a function into a task that runs it in a Kubernetes pod from an Amazon ECR image.

    Takes every ``@task.kubernetes`` argument plus ``aws_conn_id``, ``pinned_images``,
    ``resolve_digest`` and ``fallback_regions`` (see
    :class:`~airflow_ecr.operators.kubernetes.EcrKubernetesPodOperator`).

    :param python_callable: the function to run.
    :param multiple_outputs: unroll a returned dict into several XCom values.
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_EcrKubernetesDecoratedOperator,
        **kwargs,
    )
