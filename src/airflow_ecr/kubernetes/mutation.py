"""
The pod mutation hook's work: pods that ``KubernetesPodOperator`` (or ``@task.kubernetes``) is about
to launch get an ECR pull secret, with no DAG edited.

Airflow calls the hook at the end of ``build_pod_request_obj``, in the task process, before the pod
exists and with no call after it: so the Secret is created here, and a short-lived thread hands it to
the pod as soon as the pod exists. The Kubernetes client is the running operator's own (same
connection, same identity as the pod's); the AWS connection is ``[ecr] aws_conn_id``.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from airflow_ecr import _compat
from airflow_ecr.exceptions import EcrError
from airflow_ecr.kubernetes.attach import PullSecrets
from airflow_ecr.kubernetes.policy import enforce_image_policy
from airflow_ecr.settings import default_aws_conn_id

log = logging.getLogger(__name__)

# Labels KubernetesPodOperator puts on the pods it launches; the second one only outside a dry run
# (it needs a live client), so neither `airflow tasks render` nor a dry run creates a Secret.
KPO_LABEL = "kubernetes_pod_operator"
LIVE_LABEL = "airflow_kpo_in_cluster"
# Seconds a task process that is exiting still waits for its pod to appear and own its Secret.
HAND_OVER_AT_EXIT = 10.0


def launched_by_operator(pod: Any) -> bool:
    """Whether ``pod`` is a live launch of ``KubernetesPodOperator`` (not an executor's worker pod)."""
    labels = (pod.metadata.labels or {}) if pod.metadata else {}
    return labels.get(KPO_LABEL) == "True" and LIVE_LABEL in labels


def running_operator() -> Any:
    """The operator this task process is executing, or None outside a task."""
    try:
        return _compat.get_current_context()["task"]
    except Exception:
        return None


def add_pull_secret(pod: Any) -> None:
    """
    Give ``pod`` a pull secret for its ECR images when ``KubernetesPodOperator`` launches it from a
    task; an ``EcrKubernetesPodOperator`` does that itself, with its own ``aws_conn_id``.

    :param pod: the ``V1Pod`` to be created (changed in place).
    """
    if not launched_by_operator(pod):
        return
    operator = running_operator()
    if operator is None or getattr(operator, "adds_ecr_pull_secrets", False) or not hasattr(operator, "client"):
        return
    aws_conn_id = default_aws_conn_id()
    # The deployment's image policy, before the Secret: a refused image leaves nothing behind.
    enforce_image_policy(pod, aws_conn_id, None, f"task {getattr(operator, 'task_id', '?')!r}")
    secrets = PullSecrets(operator.client)
    name = secrets.attach(pod, aws_conn_id)
    if name is None:
        return
    thread = threading.Thread(
        target=_hand_over,
        args=(secrets, pod.metadata.namespace, name, pod.metadata.name),
        name=f"airflow-ecr-own-{name}",
        daemon=True,
    )
    thread.start()
    # A deferring task's process exits right after creating the pod: it first waits (briefly) for the
    # hand-over, which ends as soon as the pod exists; a pod that was refused holds no one up longer.
    atexit.register(thread.join, HAND_OVER_AT_EXIT)


def _hand_over(secrets: PullSecrets, namespace: str, name: str, pod_name: str) -> None:
    try:
        secrets.own_when_created(namespace, name, pod_name)
    except EcrError as err:
        log.error("%s", err)
