"""``@task.ecr_docker`` on the lab's Python image, returning a value through XCom."""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_ecr_lab import load

LAB = load()
HOST = LAB["accounts"][0]["host"]

with DAG(
    dag_id="ecr_decorator",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["airflow-ecr-e2e"],
):

    @task.ecr_docker(
        image=f"{HOST}/lab/python:3.11",
        aws_conn_id="aws_lab",
        force_pull=True,
        network_mode="none",
        auto_remove="success",
    )
    def in_container(a: int, b: int) -> str:
        import os
        import sys

        # /.dockerenv exists only inside a container: proves where this ran.
        python = f"py{sys.version_info[0]}{sys.version_info[1]}"
        return f"ecr-decorator-{a * b}-{python}-{os.path.exists('/.dockerenv')}"

    in_container(6, 7)
