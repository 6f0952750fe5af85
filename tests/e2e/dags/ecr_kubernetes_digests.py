"""
EcrKubernetesPodOperator running its image by digest, and every ``on_finish_action``, on the tests'
Kubernetes API server with a kubelet STAND-IN (tests/helpers/kubelet_standin.py; ``get_logs=False``).

- ``pinned``: the digest this run's pin task resolved, in the pod spec; the pod is kept (``keep_pod``);
- ``resolved``: the tag resolved when the pod is made (``resolve_digest``); ``delete_succeeded_pod``;
- ``active``: by tag; ``delete_active_pod`` (the pod is over, so it is kept), where the provider has it;
- ``docker_hub``: an unmodified ``KubernetesPodOperator`` running Docker Hub's ``busybox:1.36``, which
  the pod mutation hook points at the ECR pull-through cache of ``[ecr] pull_through_cache`` (set by
  the test) and gives a pull secret.
"""

from __future__ import annotations

import os
from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.pod_manager import OnFinishAction

from airflow_ecr.operators.images import EcrPinImagesOperator
from airflow_ecr.operators.kubernetes import EcrKubernetesPodOperator
from airflow_ecr_lab import load

IMAGE = f"{load()['accounts'][0]['host']}/app/hello:1"
POD_ARGUMENTS = {
    "namespace": os.environ.get("AIRFLOW_ECR_K8S_NAMESPACE", "default"),
    "kubernetes_conn_id": "kube_lab",
    "image": IMAGE,
    "cmds": ["echo"],
    "get_logs": False,
    "startup_timeout_seconds": 120,
}
# delete_active_pod came with a later cncf.kubernetes provider than the lowest this project supports.
ACTIVE = "delete_active_pod" if "delete_active_pod" in {a.value for a in OnFinishAction} else "keep_pod"

with DAG(
    dag_id="ecr_kubernetes_digests",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["airflow-ecr-e2e"],
):
    pin = EcrPinImagesOperator(task_id="pin", images=[IMAGE], aws_conn_id="aws_lab")
    pinned = EcrKubernetesPodOperator(
        task_id="pinned", pinned_images=pin.output, on_finish_action="keep_pod", aws_conn_id="aws_lab", **POD_ARGUMENTS
    )
    resolved = EcrKubernetesPodOperator(
        task_id="resolved",
        resolve_digest=True,
        on_finish_action="delete_succeeded_pod",
        aws_conn_id="aws_lab",
        **POD_ARGUMENTS,
    )
    active = EcrKubernetesPodOperator(task_id="active", on_finish_action=ACTIVE, aws_conn_id="aws_lab", **POD_ARGUMENTS)
    docker_hub = KubernetesPodOperator(
        task_id="docker_hub",
        **{**POD_ARGUMENTS, "image": "busybox:1.36"},
        on_finish_action="delete_pod",
    )
    pin >> pinned >> resolved >> active >> docker_hub
