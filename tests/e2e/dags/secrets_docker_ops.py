"""
Unmodified Docker provider tasks (``DockerOperator``, ``@task.docker``, ``DockerSwarmOperator``)
whose ``docker_conn_id`` names an emulated ECR registry by its real host. Nothing here knows about
airflow-ecr: the login comes from ``EcrDockerConnectionBackend``, configured through the
environment by the test that runs this DAG. Two rounds, one task at a time, so that a run spans
several lifetimes of short-lived tokens.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.docker.operators.docker import DockerOperator
from airflow.providers.docker.operators.docker_swarm import DockerSwarmOperator
from docker.types import Placement

try:
    from airflow.sdk import DAG, chain, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.baseoperator import chain

from airflow_ecr_lab import load

LAB = load()
HOST1 = LAB["accounts"][0]["host"]
HOST2 = LAB["accounts"][1]["host"]

with DAG(
    dag_id="secrets_docker_ops",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=1,
    tags=["airflow-ecr-e2e"],
):
    steps = []
    for round_ in (1, 2):
        docker = DockerOperator(
            task_id=f"docker_{round_}",
            image=f"{HOST1}/lab/busybox:1",
            # Round 2 uses the friendly id that the backend's "connections" setting maps to HOST1.
            docker_conn_id=f"ecr:{HOST1}" if round_ == 1 else "lab_registry",
            force_pull=True,
            network_mode="none",
            mount_tmp_dir=False,
            command=f"echo secrets-docker-{round_}",
            auto_remove="success",
        )

        @task.docker(
            task_id=f"decorated_{round_}",
            image=f"{HOST1}/lab/python:3.11",
            docker_conn_id=f"ecr:{HOST1}",
            force_pull=True,
            network_mode="none",
            auto_remove="success",
        )
        def in_container(round_number: int) -> str:
            import os
            import sys

            # /.dockerenv exists only inside a container: proves where this ran.
            return f"secrets-decorated-{round_number}-py{sys.version_info[0]}{sys.version_info[1]}-" + str(
                os.path.exists("/.dockerenv")
            )

        swarm = DockerSwarmOperator(
            task_id=f"swarm_{round_}",
            image=f"{HOST2}/lab/busybox:1",
            docker_conn_id=f"ecr:{HOST2}",
            command=f"echo secrets-swarm-{round_}",
            enable_logging=True,
            auto_remove="success",
            # On the manager: this DAG is about 5 s tokens through the backend; a worker pulling with
            # the service's login is tests/e2e/test_swarm_nodes.py's subject.
            placement=Placement(constraints=["node.role == manager"]),
        )
        steps += [docker, in_container(round_), swarm]
    chain(*steps)
