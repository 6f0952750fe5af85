"""
Run-time bad input, one task each: each must fail with one sentence saying what to fix. The
environment gives the connections: ``aws_lab`` (good), ``aws_expired`` (an expired session),
``aws_nocreds`` (no credentials).
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
ACCOUNT1, HOST1 = LAB["accounts"][0]["account_id"], LAB["accounts"][0]["host"]
HOST2 = LAB["accounts"][1]["host"]
BUSYBOX = f"{HOST1}/lab/busybox:1"

CASES = {
    "other_partition": {"image": f"{ACCOUNT1}.dkr.ecr.cn-north-1.amazonaws.com.cn/lab/busybox:1"},
    "unknown_aws_conn_id": {"image": BUSYBOX, "aws_conn_id": "aws_no_such_conn"},
    "no_credentials": {"image": BUSYBOX, "aws_conn_id": "aws_nocreds"},
    "expired_session": {"image": BUSYBOX, "aws_conn_id": "aws_expired"},
    "access_denied": {"image": f"{HOST2}/lab/busybox:1"},
    "image_not_in_repository": {"image": f"{HOST1}/lab/no-such-repo:1"},
    "daemon_unreachable": {"image": BUSYBOX, "docker_url": "unix:///nonexistent/docker.sock"},
}

with DAG(
    dag_id="reliability_bad_input",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=1,
    tags=["airflow-ecr-reliability"],
):
    for task_id, arguments in CASES.items():
        EcrDockerOperator(
            task_id=task_id,
            **{"aws_conn_id": "aws_lab", **arguments},
            network_mode="none",
            mount_tmp_dir=False,
            force_pull=True,
            command="echo never",
            retries=0,
        )
