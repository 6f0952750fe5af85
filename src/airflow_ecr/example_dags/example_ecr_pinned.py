"""
Reproducible runs: resolve the run's image tags to digests once, and run exactly those digests.

``pin_images`` asks the registry which digest each tag points to now (one manifest ``HEAD`` per
image, with the cached ECR token; no layer is downloaded). The tasks given ``pinned_images=pin.output``
pull and run ``<registry>/<repository>@<digest>``, so a tag pushed again while the run goes on
changes nothing for it. Every ECR task also records what it ran as the XCom ``ecr_image``.

The defaults point at the project's lab (``lab/`` in its repository;
``python -m airflow_ecr_lab up``; the manifest requests reach
its registries through ``HTTPS_PROXY``, see the lab's ``lab.json``); on AWS, set
``AIRFLOW_ECR_EXAMPLE_IMAGE`` and ``AIRFLOW_ECR_EXAMPLE_PYTHON_IMAGE`` to images of yours.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr.operators.images import EcrPinImagesOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[attr-defined,no-redef,unused-ignore]

IMAGE = os.environ.get("AIRFLOW_ECR_EXAMPLE_IMAGE", "111111111111.dkr.ecr.eu-west-1.amazonaws.com/app/hello:1")
PYTHON_IMAGE = os.environ.get(
    "AIRFLOW_ECR_EXAMPLE_PYTHON_IMAGE", "111111111111.dkr.ecr.eu-west-1.amazonaws.com/lab/python:3.11"
)
AWS_CONN_ID = os.environ.get("AIRFLOW_ECR_EXAMPLE_AWS_CONN_ID", "aws_default")
# The lab's Docker engine has no bridge network; on a normal host leave this unset.
NETWORK_MODE = os.environ.get("AIRFLOW_ECR_EXAMPLE_NETWORK_MODE") or None

with DAG(
    dag_id="example_ecr_pinned",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "ecr"],
):
    pin = EcrPinImagesOperator(task_id="pin_images", images=[IMAGE, PYTHON_IMAGE], aws_conn_id=AWS_CONN_ID)
    extract = EcrDockerOperator(
        task_id="extract",
        image=IMAGE,
        pinned_images=pin.output,
        aws_conn_id=AWS_CONN_ID,
        command=["echo", "extracted with a pinned image"],
        auto_remove="success",
        network_mode=NETWORK_MODE,
    )
    report = EcrDockerOperator(
        task_id="report",
        image=PYTHON_IMAGE,
        pinned_images=pin.output,
        aws_conn_id=AWS_CONN_ID,
        command=["python3", "-c", "print('reported with a pinned image')"],
        auto_remove="success",
        network_mode=NETWORK_MODE,
    )
    extract >> report
