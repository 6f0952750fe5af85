"""
Docker Hub official images pulled through the lab's emulated ECR pull-through cache, for
``tests/e2e/test_pull_through_lab.py`` (which sets ``AIRFLOW__ECR__PULL_THROUGH_CACHE``).

Every task names its image as Docker Hub does (``busybox:1.36``, ``python:3.11``); only the
deployment's ``[ecr] pull_through_cache`` sends them to the cache. Stand-ins: the lab's busybox and
python are what its cache holds under those names (``airflow_ecr_lab.spec.PULL_THROUGH_IMAGES``).

- ``pin`` resolves ``busybox:1.36`` through the cache, ``pinned`` pulls and runs that digest;
- ``templated`` renders its image from a template and resolves its digest itself;
- ``decorated`` is ``@task.ecr_docker`` on ``python:3.11``;
- ``first_pull`` names an image the cache never imported: ECR's answer to an identity without
  ecr:BatchImportUpstreamImage, so the task fails with the sentence naming it.

Without the option the DAG is not defined (its images are not ECR images there).
"""

from __future__ import annotations

import os
from datetime import datetime

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr.operators.images import EcrPinImagesOperator

COMMON = {"aws_conn_id": "aws_lab", "network_mode": "none", "auto_remove": "success", "force_pull": True}
DAG_ARGS = {"schedule": None, "start_date": datetime(2024, 1, 1), "catchup": False, "tags": ["airflow-ecr-e2e"]}

if os.environ.get("AIRFLOW__ECR__PULL_THROUGH_CACHE"):
    with DAG(dag_id="ecr_pull_through", **DAG_ARGS):
        pin = EcrPinImagesOperator(task_id="pin", images=["busybox:1.36"], aws_conn_id="aws_lab")
        pinned = EcrDockerOperator(
            task_id="pinned", image="busybox:1.36", pinned_images=pin.output, command=["echo", "pinned"], **COMMON
        )
        templated = EcrDockerOperator(
            task_id="templated",
            image="{{ 'busy' ~ 'box' }}:1.36",
            resolve_digest=True,
            command=["echo", "templated"],
            **COMMON,
        )

        @task.ecr_docker(image="python:3.11", **COMMON)
        def decorated(a: int) -> str:
            import sys

            return f"through-the-cache-{a}-py{sys.version_info[0]}{sys.version_info[1]}"

        first_pull = EcrDockerOperator(
            task_id="first_pull", image="docker.io/library/busybox:1.37", command=["true"], **COMMON
        )
        pin >> pinned >> templated >> decorated(42)
