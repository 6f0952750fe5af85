"""A refresh DAG from the factory, for the lab's first account (connection ``docker_ecr_factory``)."""

from __future__ import annotations

from airflow_ecr.dags import ecr_refresh_dag
from airflow_ecr_lab import load

ACCOUNT = load()["accounts"][0]

dag = ecr_refresh_dag(
    conn_id="docker_ecr_factory",
    registry=ACCOUNT["host"],
    aws_conn_id="aws_lab",
    dag_id="credentials_refresh_factory",
    # Run by `dags test` only: a schedule would make the other tests' schedulers run it too.
    schedule=None,
    tags=["airflow-ecr-e2e"],
)
