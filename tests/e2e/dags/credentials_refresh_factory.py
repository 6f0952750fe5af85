"""A refresh DAG from the factory, for the lab's first account (connection ``docker_ecr_factory``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from airflow_ecr.dags import ecr_refresh_dag

LAB_DIR = Path(os.environ.get("AIRFLOW_ECR_LAB_DIR", "/tmp/airflow-ecr-lab"))
ACCOUNT = json.loads((LAB_DIR / "lab.json").read_text())["accounts"][0]

dag = ecr_refresh_dag(
    conn_id="docker_ecr_factory",
    registry=ACCOUNT["host"],
    aws_conn_id="aws_lab",
    dag_id="credentials_refresh_factory",
    # Run by `dags test` only: a schedule would make the other tests' schedulers run it too.
    schedule=None,
    tags=["airflow-ecr-e2e"],
)
