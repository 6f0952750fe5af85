"""
A DAG that leaks on purpose, to show that the leak scan catches it: its task puts the registry
password in a child process's argv, in a file under AIRFLOW_HOME and in its XCom return value.
Never write a DAG like this.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime
from pathlib import Path

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_ecr_lab import load

LAB = load()
HOST = LAB["accounts"][0]["host"]

with DAG(
    dag_id="reliability_leak_planted",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["airflow-ecr-reliability"],
):

    @task
    def leak() -> str:
        from airflow_ecr.hooks.docker import EcrDockerHook

        password = EcrDockerHook(registry=HOST, aws_conn_id="aws_lab").registry_auth()["password"]
        subprocess.run(["/bin/sh", "-c", "sleep 1", "sh", password], check=True)  # the planted argv leak
        (Path(os.environ["AIRFLOW_HOME"]) / "planted-leak.txt").write_text(password)
        return password  # XCom is not masked

    leak()
