"""
The community stored-connection pattern, unchanged except for the import: a register task, then an
unmodified DockerOperator using the connection it writes. The ids and region are the lab's.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from airflow.providers.docker.operators.docker import DockerOperator

from airflow_ecr.operators.credentials import EcrCredentialRegisterOperator
from airflow_ecr_lab import load

ACCOUNT = load()["accounts"][0]

with DAG(
    dag_id="credentials_snippet",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["airflow-ecr-e2e"],
):
    refresh = EcrCredentialRegisterOperator(
        task_id="refresh_ecr",
        conn_id_name="docker_ecr",  # the docker connection to (re)write
        region_name=ACCOUNT["region"],
        register_ids=[ACCOUNT["account_id"]],  # sic: registry ids, a list
    )
    run = DockerOperator(
        task_id="run",
        docker_conn_id="docker_ecr",
        network_mode="none",
        image=f"{ACCOUNT['host']}/lab/busybox:1",
        command="echo hello-from-stored-connection",
        force_pull=True,
        mount_tmp_dir=False,
        auto_remove="success",
    )
    refresh >> run
