"""
``EcrDockerSwarmOperator``: run a Docker Swarm service from an Amazon ECR image.

The service is created with the registry login attached, so whichever swarm node runs the task
pulls with it; no node needs a login of its own. ``docker_url`` (or ``DOCKER_HOST``) must point
at a swarm manager.

The defaults point at the project's lab (``lab/`` in its repository;
``python -m airflow_ecr_lab up --swarm``); on AWS, set
``AIRFLOW_ECR_EXAMPLE_IMAGE`` to an image of yours in ECR.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow_ecr.operators.docker import EcrDockerSwarmOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[attr-defined,no-redef,unused-ignore]

IMAGE = os.environ.get("AIRFLOW_ECR_EXAMPLE_IMAGE", "111111111111.dkr.ecr.eu-west-1.amazonaws.com/app/hello:1")
AWS_CONN_ID = os.environ.get("AIRFLOW_ECR_EXAMPLE_AWS_CONN_ID", "aws_default")

with DAG(
    dag_id="example_ecr_swarm",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "ecr"],
):
    EcrDockerSwarmOperator(
        task_id="hello_from_a_swarm_service",
        image=IMAGE,
        aws_conn_id=AWS_CONN_ID,
        command=["echo", "hello from a swarm service"],
        enable_logging=True,
        auto_remove="success",
    )
