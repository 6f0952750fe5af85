"""
ECR images in Kubernetes pods on a REAL node: kube-scheduler and a kubelet 1.20 (dockershim) on the
lab's Docker engine (:mod:`helpers.kube_node`; its pause image and, on machines without
``CAP_SYS_RESOURCE``, an oom-score runtime shim are the only stand-ins), with the control plane of
:mod:`helpers.kube` and Airflow 3 running the same DAG as ``test_kubernetes.py``.

The kubelet, not the tests' stand-in, reads each pod's pull secret and pulls from the lab's
registries, which accept only a live token of their account.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from airflow_ecr.kubernetes.pull_secrets import LABEL
from airflow_ecr.testing import EmulatorClient
from helpers.airflow_harness import AirflowHarness, find_venv
from helpers.dag_checks import assert_no_secret
from helpers.kube import Cluster, control_plane
from helpers.kube_node import Node, real_node

pytestmark = [pytest.mark.lab, pytest.mark.airflow_run, pytest.mark.kubernetes, pytest.mark.timeout(900)]

NAMESPACE = "airflow-node"


@pytest.fixture(scope="module")
def cluster_with_node(
    tmp_path_factory: pytest.TempPathFactory, e2e_lab: dict[str, Any]
) -> Iterator[tuple[Cluster, Node]]:
    directory = tmp_path_factory.mktemp("k8s-node")
    with control_plane(directory / "control-plane") as cluster, real_node(cluster, e2e_lab, directory / "node") as node:
        yield cluster, node


def test_a_real_kubelet_pulls_each_pods_ecr_image_with_its_secret(
    cluster_with_node: tuple[Cluster, Node], ecr_admin: EmulatorClient, e2e_lab: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    """An EcrKubernetesPodOperator task and an unmodified KubernetesPodOperator task (the mutation
    hook) run on the real node: the kubelet pulls each image from its account with the pod's Secret,
    reports the digest it pulled, the Secrets go with the pods, and no token is in any log (the
    kubelet's included) or object."""
    cluster, node = cluster_with_node
    venv = find_venv("3")
    if venv is None:
        pytest.fail("no Airflow 3 virtualenv (scripts/venvs.sh 3)", pytrace=False)
    home = tmp_path_factory.mktemp("airflow3-node")
    harness = AirflowHarness(venv, home, e2e_lab, Path(e2e_lab["dir"]), dag_files=["ecr_kubernetes.py"])
    (home / "config").mkdir()
    (home / "config" / "airflow_local_settings.py").write_text(
        "from airflow_ecr.kubernetes import pod_mutation_hook  # noqa: F401\n"
    )
    kubeconfig = cluster.kubeconfig("airflow-node", cluster.namespace_with_role(NAMESPACE), NAMESPACE)
    env = {
        "AIRFLOW_CONN_KUBE_LAB": json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig), "namespace": NAMESPACE}}
        ),
        "AIRFLOW__ECR__AWS_CONN_ID": "aws_lab",
        "AIRFLOW_ECR_K8S_NAMESPACE": NAMESPACE,
    }
    result = harness.dags_test("ecr_kubernetes", timeout=420, extra_env=env)
    assert result.rc == 0, result.describe() + "\nkubelet:\n" + node.kubelet_log.read_text(errors="replace")[-4000:]

    # The pods ran on the real node, each from its own account, and the node reported the digest.
    accounts = e2e_lab["accounts"][:2]
    record = harness.xcom("ecr_kubernetes", "ecr_operator", key="ecr_image")
    assert record["image"] == f"{accounts[0]['host']}/app/hello:1", record
    # dockershim reports an image by its first repo digest, which names another repository when the
    # node holds the same image under several (the lab's images are all one busybox): the record then
    # has no digest rather than another repository's.
    repository = f"{accounts[0]['host']}/app/hello"
    client = docker.APIClient(base_url=e2e_lab["docker_host"])
    try:
        repo_digests = client.inspect_image(f"{repository}:1")["RepoDigests"]
    finally:
        client.close()
    pulled_digest = next(d.split("@", 1)[1] for d in repo_digests if d.startswith(repository + "@"))
    expected = pulled_digest if repo_digests[0].startswith(repository + "@") else None
    assert record["digest"] == expected, (record, repo_digests)
    events = cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}/events")["items"]
    pulled = sorted(e["message"] for e in events if e["reason"] == "Pulled")
    assert len(pulled) == 2 and all("Successfully pulled image" in m for m in pulled), pulled
    assert {e["source"].get("host") for e in events if e["reason"] == "Pulled"} == {node.name}
    for account in accounts:
        assert any(f'"{account["host"]}/app/hello:1"' in m for m in pulled), pulled

    # The pods are gone (delete_pod), and their Secrets with them (the garbage collector).
    assert cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"] == []
    deadline = time.monotonic() + 20
    path = f"/api/v1/namespaces/{NAMESPACE}/secrets?labelSelector={LABEL}%3Dtrue"
    while (left := cluster.request("GET", path)["items"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []

    passwords = ecr_admin.passwords([a["account_id"] for a in accounts])
    texts = {"output": result.output, **result.logs, "events": json.dumps(events)}
    assert_no_secret({**texts, "kubelet": node.kubelet_log.read_text(errors="replace")}, passwords)
