"""Two EcrDockerOperator tasks, one per lab account, pulling by the real ECR host names."""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr_lab import load

LAB = load()

with DAG(
    dag_id="ecr_two_accounts",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["airflow-ecr-e2e"],
):
    for account in LAB["accounts"]:
        EcrDockerOperator(
            task_id=f"hello_{account['account_id']}",
            image=f"{account['host']}/app/hello:1",
            aws_conn_id="aws_lab",
            force_pull=True,
            network_mode="none",
            mount_tmp_dir=False,
            command=f"echo hello-from-{account['account_id']}",
            auto_remove="success",
        )
