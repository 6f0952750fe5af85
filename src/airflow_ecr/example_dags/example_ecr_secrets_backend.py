"""
Unmodified Docker provider tasks pulling from Amazon ECR through the airflow-ecr secrets backend.

Nothing in this file imports airflow-ecr: ``DockerOperator``, ``@task.docker`` and
``DockerSwarmOperator`` log in with the docker connection named by ``docker_conn_id``, and the
secrets backend answers that lookup with a connection holding a live ECR token. It needs this
configuration on every Airflow component that runs tasks (``airflow.cfg`` or the environment)::

    [secrets]
    backend = airflow_ecr.secrets.ecr.EcrDockerConnectionBackend
    backend_kwargs = {"connections": {"docker_ecr": "111111111111.dkr.ecr.eu-west-1.amazonaws.com"}}

or ``AIRFLOW__SECRETS__BACKEND`` / ``AIRFLOW__SECRETS__BACKEND_KWARGS``. On Airflow 3, task
processes read ``[workers] secrets_backend`` / ``secrets_backend_kwargs`` first. The AWS
credentials come from boto3's default chain (instance or task role, IRSA, environment) unless
``backend_kwargs`` sets ``profile_name``, ``role_arn``, ``endpoint_url``, ...; for the lab, add
``"endpoint_url": "<the lab's emulator_url>", "region_name": "eu-west-1"`` and export any
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.

Two kinds of connection id work: ``ecr:<registry host>`` with no configuration beyond the backend,
and friendly ids mapped to a registry in ``connections`` (``docker_ecr`` here).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.docker.operators.docker import DockerOperator

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[attr-defined,no-redef,unused-ignore]
    from airflow.decorators import task  # type: ignore[attr-defined,no-redef,unused-ignore]

REGISTRY = os.environ.get("AIRFLOW_ECR_EXAMPLE_REGISTRY", "111111111111.dkr.ecr.eu-west-1.amazonaws.com")
NETWORK_MODE = os.environ.get("AIRFLOW_ECR_EXAMPLE_NETWORK_MODE") or None

with DAG(
    dag_id="example_ecr_secrets_backend",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "ecr"],
):
    by_host = DockerOperator(
        task_id="docker_conn_id_names_the_registry",
        image=f"{REGISTRY}/app/hello:1",
        docker_conn_id=f"ecr:{REGISTRY}",  # resolved by the backend: no stored connection
        command=["echo", "hello through ecr:<registry host>"],
        force_pull=True,
        auto_remove="success",
        network_mode=NETWORK_MODE,
    )

    mapped = DockerOperator(
        task_id="docker_conn_id_mapped_in_backend_kwargs",
        image=f"{REGISTRY}/app/hello:1",
        docker_conn_id="docker_ecr",  # backend_kwargs "connections" maps it to REGISTRY
        command=["echo", "hello through a mapped connection id"],
        force_pull=True,
        auto_remove="success",
        network_mode=NETWORK_MODE,
    )

    @task.docker(
        image=f"{REGISTRY}/lab/python:3.11",
        docker_conn_id=f"ecr:{REGISTRY}",
        auto_remove="success",
        network_mode=NETWORK_MODE,
    )
    def in_container() -> str:
        import sys

        return f"python {sys.version_info[0]}.{sys.version_info[1]} in an ECR image"

    by_host >> mapped >> in_container()
