"""The Celery load test's DAG (copied into the test's DAGs folder; not collected by pytest).

``ECR_LOAD_TASKS`` (default 200) mapped ``EcrDockerOperator`` tasks on one ECR registry, each with
``force_pull`` so that every task needs a registry login: a token from the worker host's cache, or
a ``GetAuthorizationToken`` call when the cached one is due for refresh.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr_lab import load

LAB = load()
HOST = LAB["accounts"][0]["host"]
TASKS = int(os.environ.get("ECR_LOAD_TASKS", "200"))

with DAG(
    dag_id="celery_ecr_load",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=int(os.environ.get("ECR_LOAD_MAX_ACTIVE", "16")),
    tags=["airflow-ecr-load"],
):
    EcrDockerOperator.partial(
        task_id="pull_and_run",
        image=f"{HOST}/lab/busybox:1",
        aws_conn_id="aws_lab",
        force_pull=True,
        network_mode="none",
        mount_tmp_dir=False,
        auto_remove="success",
        do_xcom_push=False,
    ).expand(command=[f"echo load-{i}" for i in range(TASKS)])
