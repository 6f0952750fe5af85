"""
Two pods on the tests' Kubernetes API server, each pulling from its own lab ECR account: one from
EcrKubernetesPodOperator, one from an unmodified KubernetesPodOperator (its pull secret comes from
``airflow_ecr.kubernetes.pod_mutation_hook`` in the deployment's airflow_local_settings.py).

``get_logs=False``: the node is a kubelet stand-in (tests/helpers/kubelet_standin.py), which serves
no logs. The namespace and the connection ``kube_lab`` come from the test.
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
from airflow_ecr_lab import load

LAB = load()
ACCOUNT_A, ACCOUNT_B = LAB["accounts"][0], LAB["accounts"][1]
POD_ARGUMENTS = {
    "namespace": os.environ.get("AIRFLOW_ECR_K8S_NAMESPACE", "default"),
    "kubernetes_conn_id": "kube_lab",
    "get_logs": False,
    "startup_timeout_seconds": 120,
    "on_finish_action": "delete_pod",
    "image_pull_policy": "Always",  # a real node (test_kubernetes_node.py) asks the registry every time
    "deferrable": os.environ.get("AIRFLOW_ECR_K8S_DEFERRABLE") == "1",
}

with DAG(
    dag_id="ecr_kubernetes",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["airflow-ecr-e2e"],
):
    EcrKubernetesPodOperator(
        task_id="ecr_operator",
        image=f"{ACCOUNT_A['host']}/app/hello:1",
        aws_conn_id="aws_lab",
        cmds=["echo"],
        arguments=["hello-from-the-ecr-operator"],
        **POD_ARGUMENTS,
    )
    KubernetesPodOperator(
        task_id="unmodified_operator",
        image=f"{ACCOUNT_B['host']}/app/hello:1",
        cmds=["echo"],
        arguments=["hello-from-an-unmodified-operator"],
        **POD_ARGUMENTS,
    )
