"""Pins in one DAG run, for ``tests/e2e/test_digests.py`` (the test sets ``ECR_PIN_REPOSITORY``, a fresh repository).

Kept: a run pinned to digests whose tag is pushed again between two tasks. ``pin``
resolves the tag (and a multi-arch tag) once; ``first`` and ``second`` pull by the pinned digest
while ``repush`` pushes a new image (marker ``ECR_PIN_SECOND``) under the same tag in between;
``unpinned`` pulls the tag and gets the new image (the control); ``local`` runs the now-local image
without pulling. Each task prints ``/marker``.

Broken, beside them in the same run: ``pin_missing`` fails on a tag that does not exist, so
``never`` runs no container; ``pin_doomed`` resolves the tag ``doomed``, ``delete`` deletes that digest
from the registry (as a lifecycle policy would), and ``gone`` then fails naming the image, the
digest and when it was resolved.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr.operators.images import EcrPinImagesOperator
from airflow_ecr_lab import load

LAB = load()
ACCOUNT = LAB["accounts"][0]["account_id"]
HOST = LAB["accounts"][0]["host"]
REPOSITORY = os.environ.get("ECR_PIN_REPOSITORY", "app/pinned")
IMAGE = f"{HOST}/{REPOSITORY}:1"
MULTI = f"{HOST}/{REPOSITORY}:multi"
MISSING = f"{HOST}/{REPOSITORY}:no-such-tag"
DOOMED = f"{HOST}/{REPOSITORY}:doomed"
COMMON = {"aws_conn_id": "aws_lab", "network_mode": "none", "auto_remove": "success", "command": ["cat", "/marker"]}
DAG_ARGS = {"schedule": None, "start_date": datetime(2024, 1, 1), "catchup": False, "tags": ["airflow-ecr-e2e"]}

with DAG(dag_id="ecr_pins", **DAG_ARGS):
    pin = EcrPinImagesOperator(task_id="pin", images=[IMAGE, MULTI], aws_conn_id="aws_lab")
    first = EcrDockerOperator(task_id="first", image=IMAGE, pinned_images=pin.output, force_pull=True, **COMMON)

    @task
    def repush() -> str:
        from airflow_ecr_lab.repository import push_marker_image

        return push_marker_image(None, ACCOUNT, f"{REPOSITORY}:1", os.environ.get("ECR_PIN_SECOND", "second"))

    second = EcrDockerOperator(task_id="second", image=IMAGE, pinned_images=pin.output, force_pull=True, **COMMON)
    unpinned = EcrDockerOperator(task_id="unpinned", image=IMAGE, force_pull=True, **COMMON)
    local = EcrDockerOperator(task_id="local", image=IMAGE, **COMMON)
    multi = EcrDockerOperator(task_id="multi", image=MULTI, pinned_images=pin.output, force_pull=True, **COMMON)

    pushed = repush()
    first >> pushed >> [second, unpinned]
    unpinned >> local
    second >> multi

    pin_missing = EcrPinImagesOperator(task_id="pin_missing", images=[MISSING], aws_conn_id="aws_lab")
    EcrDockerOperator(task_id="never", image=MISSING, pinned_images=pin_missing.output, **COMMON)

    pin_doomed = EcrPinImagesOperator(task_id="pin_doomed", images=[DOOMED], aws_conn_id="aws_lab")

    @task
    def delete(pins: dict[str, Any]) -> None:
        from airflow_ecr_lab.repository import delete_manifest

        delete_manifest(None, ACCOUNT, REPOSITORY, pins[DOOMED]["digest"])

    gone = EcrDockerOperator(task_id="gone", image=DOOMED, pinned_images=pin_doomed.output, force_pull=True, **COMMON)
    delete(pin_doomed.output) >> gone
