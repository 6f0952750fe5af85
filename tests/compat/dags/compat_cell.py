"""
What every compatibility-matrix cell runs for real against the lab, in one DAG:

- ``EcrDockerOperator`` pulling from two accounts (two regions) by their real ECR names;
- ``@task.ecr_docker`` returning a value through XCom;
- an unmodified ``DockerOperator`` whose ``docker_conn_id`` the secrets backend resolves;
- ``EcrCredentialRegisterOperator`` writing a stored connection (the ORM on Airflow 2, the REST API
  on Airflow 3), then an unmodified ``DockerOperator`` using it.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.docker.operators.docker import DockerOperator

from airflow_ecr.operators.credentials import EcrCredentialRegisterOperator
from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr_lab import load

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

LAB = load()
FIRST = LAB["accounts"][0]
COMMON = {"force_pull": True, "network_mode": "none", "mount_tmp_dir": False, "auto_remove": "success"}

with DAG(dag_id="compat_cell", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, max_active_tasks=1):
    for account in LAB["accounts"]:
        EcrDockerOperator(
            task_id=f"ecr_{account['account_id']}",
            image=f"{account['host']}/app/hello:1",
            aws_conn_id="aws_lab",
            command=f"echo compat-ecr-{account['account_id']}",
            **COMMON,
        )

    @task.ecr_docker(image=f"{FIRST['host']}/lab/python:3.11", aws_conn_id="aws_lab", **COMMON)
    def decorated(a: int, b: int) -> str:
        import os

        # /.dockerenv exists only inside a container: proves where this ran.
        return f"compat-decorated-{a * b}-{os.path.exists('/.dockerenv')}"

    decorated(6, 7)

    DockerOperator(
        task_id="secrets_backend",
        image=f"{FIRST['host']}/lab/busybox:1",
        docker_conn_id=f"ecr:{FIRST['host']}",
        command="echo compat-secrets-backend",
        **COMMON,
    )

    register = EcrCredentialRegisterOperator(
        task_id="register",
        conn_id_name="compat_stored",
        aws_conn_id="aws_lab",
        region_name=FIRST["region"],
        register_ids=[FIRST["account_id"]],
    )
    stored = DockerOperator(
        task_id="stored_connection",
        image=f"{FIRST['host']}/lab/busybox:1",
        docker_conn_id="compat_stored",
        command="echo compat-stored-connection",
        **COMMON,
    )
    register >> stored
