"""
``ecr_refresh_dag``: a DAG that rewrites a docker connection with a fresh ECR token every 6 hours.

ECR tokens live 12 hours, so unmodified ``DockerOperator(docker_conn_id="docker_ecr")`` tasks in
any other DAG keep working. Settings as for ``example_ecr_register.py`` (on Airflow 3, the
``airflow_api`` connection). The DAG is created paused in most deployments: unpause it to start.
"""

from __future__ import annotations

import os

from airflow_ecr.dags import ecr_refresh_dag

dag = ecr_refresh_dag(
    conn_id="docker_ecr",
    registry=os.environ.get("AIRFLOW_ECR_EXAMPLE_REGISTRY", "111111111111.dkr.ecr.eu-west-1.amazonaws.com"),
    aws_conn_id=os.environ.get("AIRFLOW_ECR_EXAMPLE_AWS_CONN_ID", "aws_default"),
    dag_id="example_ecr_refresh_dag",
    tags=["example", "ecr"],
)
