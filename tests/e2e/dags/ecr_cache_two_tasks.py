"""Two sequential EcrDockerOperator tasks on one registry: the second must be served by the host
token cache (no second GetAuthorizationToken call) although it runs in another process."""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr_lab import load

LAB = load()
HOST = LAB["accounts"][0]["host"]

with DAG(
    dag_id="ecr_cache_two_tasks",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=1,
    tags=["airflow-ecr-e2e"],
):
    first, second = (
        EcrDockerOperator(
            task_id=task_id,
            image=f"{HOST}/{repository}",
            aws_conn_id="aws_lab",
            force_pull=True,
            network_mode="none",
            mount_tmp_dir=False,
            command=f"echo cache-{task_id}",
            auto_remove="success",
        )
        for task_id, repository in (("first", "lab/busybox:1"), ("second", "app/hello:1"))
    )
    first >> second
