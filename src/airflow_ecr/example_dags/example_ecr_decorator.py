"""
``@task.ecr_docker``: run a Python function in a container from an Amazon ECR image.

The function's source is shipped into the container and its return value comes back through
XCom, as with ``@task.docker``; the registry login comes from the AWS connection. The image must
have a ``python3`` of the same major version as the workers.

The defaults point at the project's lab (``lab/`` in its repository;
``python -m airflow_ecr_lab up``); on AWS, set
``AIRFLOW_ECR_EXAMPLE_PYTHON_IMAGE`` to a Python image of yours in ECR.
"""

from __future__ import annotations

import os
from datetime import datetime

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[attr-defined,no-redef,unused-ignore]
    from airflow.decorators import task  # type: ignore[attr-defined,no-redef,unused-ignore]

PYTHON_IMAGE = os.environ.get(
    "AIRFLOW_ECR_EXAMPLE_PYTHON_IMAGE", "111111111111.dkr.ecr.eu-west-1.amazonaws.com/lab/python:3.11"
)
AWS_CONN_ID = os.environ.get("AIRFLOW_ECR_EXAMPLE_AWS_CONN_ID", "aws_default")

with DAG(
    dag_id="example_ecr_decorator",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "ecr"],
):

    @task.ecr_docker(
        image=PYTHON_IMAGE,
        aws_conn_id=AWS_CONN_ID,
        # Check the registry on every run (a new image under the same tag is used); without it, an
        # image already on the Docker host runs with no AWS or registry call at all.
        force_pull=True,
        auto_remove="success",
        # The lab's Docker engine has no bridge network; on a normal host leave this unset.
        network_mode=os.environ.get("AIRFLOW_ECR_EXAMPLE_NETWORK_MODE") or None,
    )
    def score(values: list[int]) -> int:
        # Runs inside the container: only the image's packages are available here.
        return sum(v * v for v in values)

    @task
    def report(total: int) -> None:
        print(f"sum of squares computed in the ECR image: {total}")

    report(score([1, 2, 3]))  # type: ignore[arg-type]  # an XComArg at parse time, an int at run time
