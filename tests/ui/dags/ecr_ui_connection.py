"""One EcrDockerOperator whose ECR settings all come from the ``ecr_ui`` connection made in the UI.

No ``aws_conn_id`` here: the AWS connection must be the one the form stored in the extra.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr_lab import load

LAB = load()
MARKER = "hello-from-the-ui-connection"

with DAG(
    dag_id="ecr_ui_connection",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["airflow-ecr-e2e"],
):
    EcrDockerOperator(
        task_id="hello",
        docker_conn_id="ecr_ui",
        image=f"{LAB['accounts'][0]['host']}/app/hello:1",
        force_pull=True,
        network_mode="none",
        mount_tmp_dir=False,
        command=f"echo {MARKER}",
        auto_remove="success",
    )
