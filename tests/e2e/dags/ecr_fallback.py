"""Replica-region fallback in a real DAG run: the image's region fails twice, two ways, mid-run.

``api_down`` takes the ECR API of the image's region out (the emulator's ``down_regions``), and
``through_api_outage`` pulls from the replica; ``registry_down`` brings the API back and stops the
region's registry instead, and ``through_registry_outage`` pulls from the replica again; ``restore``
starts the registry whatever happened. Both ECR tasks print ``/marker`` of the lab image (none: echo).
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr_lab import emulator_client, load

LAB = load()
ACCOUNT = LAB["accounts"][0]
IMAGE = f"{ACCOUNT['host']}/lab/busybox:1"
REPLICA_REGION = LAB["replicas"][0]["region"]
COMMON = {
    "aws_conn_id": "aws_lab",
    "network_mode": "none",
    "auto_remove": "success",
    "force_pull": True,
    "fallback_regions": [REPLICA_REGION],
}

with DAG(
    dag_id="ecr_fallback",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["airflow-ecr-e2e"],
):

    @task
    def api_down() -> None:

        emulator_client(LAB).faults(down_regions=[ACCOUNT["region"]])

    @task
    def registry_down() -> None:
        from airflow_ecr_lab import stop_registry

        emulator_client(LAB).faults(down_regions=[])
        stop_registry(None, ACCOUNT["account_id"])

    @task(trigger_rule="all_done")
    def restore() -> None:
        from airflow_ecr_lab import start_registry

        start_registry(None, ACCOUNT["account_id"])

    through_api = EcrDockerOperator(
        task_id="through_api_outage", image=IMAGE, command=["echo", "served-despite-api-outage"], **COMMON
    )
    through_registry = EcrDockerOperator(
        task_id="through_registry_outage", image=IMAGE, command=["echo", "served-despite-registry-outage"], **COMMON
    )
    api_down() >> through_api >> registry_down() >> through_registry >> restore()
