"""
The shape of the docker provider's own ``example_docker.py`` (``docker_test``: two Bash tasks, a
``DockerOperator``, a final Bash task), plus the provider's other two Docker task kinds, with no
``docker_conn_id`` anywhere and nothing of airflow-ecr in it: the ECR logins come from Docker's
``config.json`` (``credHelpers``, written by ``airflow-ecr configure-docker``) through
``docker-credential-airflow-ecr``, configured by the test that runs it.

Against the upstream file only what the lab needs changes: the image (the lab's ECR image), the
daemon (``DOCKER_HOST``, as the lab has no /var/run/docker.sock), ``network_mode="none"`` (no
bridge in the lab) and a shorter sleep. The upstream file is not shipped in the provider's wheel.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.docker.operators.docker import DockerOperator
from airflow.providers.docker.operators.docker_swarm import DockerSwarmOperator
from docker.types import Placement

try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2 without the standard provider
    from airflow.operators.bash import BashOperator
try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_ecr_lab import load

LAB = load()
HOST = LAB["accounts"][0]["host"]
HOST2 = LAB["accounts"][1]["host"]

with DAG(
    "docker_credential_helper",
    schedule=None,
    start_date=datetime(2021, 1, 1),
    catchup=False,
    tags=["example", "docker", "airflow-ecr-e2e"],
) as dag:
    t1 = BashOperator(task_id="print_date", bash_command="date")
    t2 = BashOperator(task_id="sleep", bash_command="sleep 1", retries=3)
    t3 = DockerOperator(
        command="/bin/sleep 1",
        image=f"{HOST}/lab/busybox:1",
        network_mode="none",
        force_pull=True,
        mount_tmp_dir=False,
        task_id="docker_op_tester",
    )
    t4 = BashOperator(task_id="print_hello", bash_command='echo "hello world!!!"')

    @task.docker(image=f"{HOST}/lab/python:3.11", network_mode="none", force_pull=True, auto_remove="success")
    def decorated() -> str:
        import os

        return f"in-container-{os.path.exists('/.dockerenv')}"

    swarm = DockerSwarmOperator(
        task_id="swarm",
        image=f"{HOST2}/lab/busybox:1",
        command="echo helper-swarm",
        enable_logging=True,
        auto_remove="success",
        placement=Placement(constraints=["node.role == manager"]),
    )

    t1 >> [t2, t3] >> t4 >> decorated() >> swarm
