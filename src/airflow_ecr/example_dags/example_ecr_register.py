"""
The stored-connection pattern: ``EcrCredentialRegisterOperator`` writes a fresh ECR token into a
docker connection, then unmodified ``DockerOperator`` tasks use that connection.

It takes the arguments of the widely copied community operator (``conn_id_name``,
``region_name``, ``register_ids``), so an existing DAG changes only its import. The connection is
upserted, never deleted: on Airflow 2 through the ORM, on Airflow 3 through the REST API, whose
URL and credentials live in the ``airflow_api`` connection, e.g.::

    AIRFLOW_CONN_AIRFLOW_API='{"conn_type": "http", "host": "http://127.0.0.1:8080",
                               "login": "admin", "password": "..."}'

For a refresh on a schedule instead of before each run, see ``example_ecr_refresh_dag.py``.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.docker.operators.docker import DockerOperator

from airflow_ecr.operators.credentials import EcrCredentialRegisterOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[attr-defined,no-redef,unused-ignore]

ACCOUNT_ID = os.environ.get("AIRFLOW_ECR_EXAMPLE_ACCOUNT_ID", "111111111111")
REGION = os.environ.get("AIRFLOW_ECR_EXAMPLE_REGION", "eu-west-1")
AWS_CONN_ID = os.environ.get("AIRFLOW_ECR_EXAMPLE_AWS_CONN_ID", "aws_default")

with DAG(
    dag_id="example_ecr_register",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "ecr"],
):
    refresh = EcrCredentialRegisterOperator(
        task_id="refresh_ecr_connection",
        conn_id_name="docker_ecr",
        region_name=REGION,
        register_ids=[ACCOUNT_ID],
        aws_conn_id=AWS_CONN_ID,
    )
    pull = DockerOperator(
        task_id="docker_with_the_stored_connection",
        image=f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/app/hello:1",
        docker_conn_id="docker_ecr",
        command=["echo", "hello with a stored, freshly written connection"],
        force_pull=True,
        auto_remove="success",
        network_mode=os.environ.get("AIRFLOW_ECR_EXAMPLE_NETWORK_MODE") or None,
    )
    refresh >> pull
