"""
Tasks that handle ECR tokens in every way a DAG does, for the leak scan: a templated
EcrDockerOperator (rendered fields), an ``@task.ecr_docker`` function (XCom), two registries in two
regions, and a task that fails after its token was fetched (exception text).
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr_lab import load

LAB = load()
HOST1, HOST2 = (a["host"] for a in LAB["accounts"][:2])
COMMON = {"aws_conn_id": "aws_lab", "network_mode": "none", "mount_tmp_dir": False, "auto_remove": "success"}

with DAG(
    dag_id="reliability_secrets",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=1,
    tags=["airflow-ecr-reliability"],
):
    EcrDockerOperator(
        task_id="templated",
        image="{{ params.host }}/lab/busybox:1",
        command="echo templated-{{ params.host }}",
        environment={"WHERE": "{{ params.host }}"},
        params={"host": HOST1},
        force_pull=True,
        **COMMON,
    )
    EcrDockerOperator(
        task_id="second_region", image=f"{HOST2}/app/hello:1", command="echo second", force_pull=True, **COMMON
    )

    @task.ecr_docker(image=f"{HOST1}/lab/python:3.11", force_pull=True, **COMMON)
    def returns_xcom(x: int) -> int:
        return x * 2

    returns_xcom(21)
    EcrDockerOperator(task_id="missing_tag", image=f"{HOST1}/lab/busybox:no-such-tag", retries=0, **COMMON)
