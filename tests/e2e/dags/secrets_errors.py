"""
Unmodified ``DockerOperator`` tasks whose ``docker_conn_id`` is under the airflow-ecr scheme but
cannot be resolved: a malformed id, a registry in an unknown region, and a registry whose account
ECR denies. Each task must fail with one sentence naming its conn id and what to fix.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.docker.operators.docker import DockerOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from airflow_ecr_lab import load

LAB = load()
ACCOUNT1 = LAB["accounts"][0]["account_id"]
HOST2 = LAB["accounts"][1]["host"]

CONN_IDS = {
    "malformed": "ecr:not-a-registry.example.com",
    "unknown_region": f"ecr:{ACCOUNT1}.dkr.ecr.xx-nope-1.amazonaws.com",
    "denied": f"ecr:{HOST2}",
}

with DAG(
    dag_id="secrets_errors",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["airflow-ecr-e2e"],
):
    for task_id, conn_id in CONN_IDS.items():
        DockerOperator(
            task_id=task_id,
            image=f"{conn_id.removeprefix('ecr:')}/lab/busybox:1",
            docker_conn_id=conn_id,
            network_mode="none",
            mount_tmp_dir=False,
            command="echo never",
            retries=0,
        )
