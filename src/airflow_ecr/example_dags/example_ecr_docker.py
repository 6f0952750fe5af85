"""
Run a container from an Amazon ECR image; credentials come from the AWS connection.

The defaults point at the bundled ECR emulator's lab (``scripts/demo.sh``); on AWS, set
``AIRFLOW_ECR_EXAMPLE_IMAGE`` to an image of yours (or edit ``IMAGE``) and drop ``network_mode``.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow_ecr.operators.docker import EcrDockerOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[attr-defined,no-redef,unused-ignore]

IMAGE = os.environ.get("AIRFLOW_ECR_EXAMPLE_IMAGE", "111111111111.dkr.ecr.eu-west-1.amazonaws.com/app/hello:1")
AWS_CONN_ID = os.environ.get("AIRFLOW_ECR_EXAMPLE_AWS_CONN_ID", "aws_default")

with DAG(
    dag_id="example_ecr_docker",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "ecr"],
):
    EcrDockerOperator(
        task_id="hello_from_ecr",
        image=IMAGE,
        aws_conn_id=AWS_CONN_ID,
        command=["echo", "hello from an ECR image"],
        force_pull=True,
        auto_remove="success",
        # The lab's Docker engine has no bridge network; on a normal host leave this unset.
        network_mode=os.environ.get("AIRFLOW_ECR_EXAMPLE_NETWORK_MODE") or None,
    )
