"""
The image policy (``[ecr] image_policy``, set by the test) for pods, on the tests' Kubernetes API
server with a kubelet STAND-IN (tests/helpers/kubelet_standin.py):

- ``signed``: EcrKubernetesPodOperator with a signed image: it runs, by the digest checked;
- ``unsigned``: EcrKubernetesPodOperator with an unsigned image: refused before its pod or Secret exists;
- ``unmodified``: an unmodified ``KubernetesPodOperator`` with the unsigned image: the pod mutation
  hook refuses it, before its pod or Secret exists.

The images come from the test: ``AIRFLOW_ECR_POLICY_SIGNED`` and ``AIRFLOW_ECR_POLICY_UNSIGNED``.
"""

from __future__ import annotations

import os
from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from airflow_ecr.operators.kubernetes import EcrKubernetesPodOperator

POD_ARGUMENTS = {
    "namespace": os.environ.get("AIRFLOW_ECR_K8S_NAMESPACE", "default"),
    "kubernetes_conn_id": "kube_lab",
    "cmds": ["echo"],
    "get_logs": False,
    "startup_timeout_seconds": 120,
    "on_finish_action": "delete_succeeded_pod",
}
SIGNED = os.environ.get("AIRFLOW_ECR_POLICY_SIGNED", "")
UNSIGNED = os.environ.get("AIRFLOW_ECR_POLICY_UNSIGNED", "")

with DAG(
    dag_id="ecr_kubernetes_policy",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["airflow-ecr-e2e"],
):
    EcrKubernetesPodOperator(task_id="signed", image=SIGNED, aws_conn_id="aws_lab", **POD_ARGUMENTS)
    EcrKubernetesPodOperator(task_id="unsigned", image=UNSIGNED, aws_conn_id="aws_lab", retries=0, **POD_ARGUMENTS)
    KubernetesPodOperator(task_id="unmodified", image=UNSIGNED, retries=0, **POD_ARGUMENTS)
