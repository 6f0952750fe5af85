"""
ECR images in Kubernetes pods, against a real Kubernetes API server (etcd, kube-apiserver with RBAC,
kube-controller-manager: :mod:`helpers.kube`) and real Airflow (3.x and 2.11) running a DAG.

Airflow talks to the API server as a ServiceAccount bound to exactly the documented Role, so the
server refuses anything more. The node is a STAND-IN for the kubelet (:mod:`helpers.kubelet_standin`):
it reads each pod's pull secrets through the API and pulls through the lab's real Docker engine from
the lab's registries, which accept only a live token of their account.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_ecr.kubernetes.pull_secrets import LABEL, ROLE_RULES
from airflow_ecr.operators.kubernetes import EcrKubernetesPodOperator
from airflow_ecr.testing import EmulatorClient
from airflow_ecr.trust.envelopes import JWS_MEDIA_TYPE
from airflow_ecr_lab.repository import push_marker_image
from airflow_ecr_lab.signing import LabRegistry, make_pki, notation_jws, notation_payload
from helpers.airflow_harness import AirflowHarness, find_venv
from helpers.dag_checks import assert_no_secret
from helpers.kube import Cluster, control_plane
from helpers.kubelet_standin import kubelet_standin

pytestmark = [pytest.mark.lab, pytest.mark.airflow_run, pytest.mark.kubernetes, pytest.mark.timeout(900)]

REPLICA_REGION = "eu-central-1"  # the lab replicates the first account's repositories there
LOCAL_SETTINGS = "from airflow_ecr.kubernetes import pod_mutation_hook  # noqa: F401\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with control_plane(tmp_path_factory.mktemp("k8s")) as running:
        yield running


@pytest.fixture(scope="module", params=[pytest.param("3", id="af3"), pytest.param("2", id="af2")])
def deployment(
    request: pytest.FixtureRequest, cluster: Cluster, e2e_lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[AirflowHarness, str, dict[str, str]]:
    """An Airflow home with the pod mutation hook in airflow_local_settings.py, a namespace of its
    own, and a ``kube_lab`` connection holding the least-privilege ServiceAccount's token."""
    venv = find_venv(request.param)
    if venv is None:
        pytest.fail(f"no Airflow {request.param} virtualenv (scripts/venvs.sh {request.param})", pytrace=False)
    home = tmp_path_factory.mktemp(f"airflow{request.param}-k8s")
    harness = AirflowHarness(
        venv,
        home,
        e2e_lab,
        Path(e2e_lab["dir"]),
        dag_files=["ecr_kubernetes.py", "ecr_kubernetes_digests.py", "ecr_kubernetes_policy.py"],
    )
    (home / "config").mkdir()
    (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
    namespace = f"airflow{request.param}"
    token = cluster.namespace_with_role(namespace)
    kubeconfig = cluster.kubeconfig(f"airflow{request.param}", token, namespace)
    env = {
        "AIRFLOW_CONN_KUBE_LAB": json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig), "namespace": namespace}}
        ),
        "AIRFLOW__ECR__AWS_CONN_ID": "aws_lab",
        "AIRFLOW_ECR_K8S_NAMESPACE": namespace,
    }
    return harness, namespace, env


def pull_secrets(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return cluster.request("GET", f"/api/v1/namespaces/{namespace}/secrets?labelSelector={LABEL}%3Dtrue")["items"]


def wait_until_gone(cluster: Cluster, namespace: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The pull secrets still there once the garbage collector had ``timeout`` s to delete them."""
    deadline = time.monotonic() + timeout
    while (left := pull_secrets(cluster, namespace)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_the_role_allows_nothing_more(cluster: Cluster, deployment: tuple[AirflowHarness, str, dict[str, str]]) -> None:
    """The ServiceAccount Airflow runs as is refused outside the Role: the API server enforces it."""
    _, namespace, _ = deployment
    token = cluster.namespace_with_role(f"{namespace}-probe")
    refused = []
    for method, path in [
        ("GET", "/api/v1/secrets"),  # cluster-wide
        ("GET", f"/api/v1/namespaces/{namespace}/secrets"),  # another namespace
        ("GET", f"/api/v1/namespaces/{namespace}-probe/configmaps"),  # not in the Role
        ("POST", "/api/v1/namespaces"),
    ]:
        with pytest.raises(requests.HTTPError) as err:
            cluster.request(method, path, {"metadata": {"name": "x"}} if method == "POST" else None, token=token)
        refused.append(err.value.response.status_code)
    assert refused == [403, 403, 403, 403]
    # And what the Role grants, it grants.
    listed = cluster.request("GET", f"/api/v1/namespaces/{namespace}-probe/secrets", token=token)["items"]
    assert {s["type"] for s in listed} <= {"kubernetes.io/service-account-token"}
    assert {tuple(r["resources"]) for r in ROLE_RULES} == {("pods",), ("pods/log",), ("events",), ("secrets",)}


@pytest.mark.parametrize("deferrable", [pytest.param(False, id="sync"), pytest.param(True, id="deferrable")])
def test_pods_pull_from_two_accounts_with_their_own_secrets(
    cluster: Cluster,
    deployment: tuple[AirflowHarness, str, dict[str, str]],
    ecr_admin: EmulatorClient,
    e2e_lab: dict[str, Any],
    deferrable: bool,
) -> None:
    """EcrKubernetesPodOperator and an unmodified KubernetesPodOperator (through the mutation hook)
    each pull from their own ECR account with their own pod's Secret; the Secrets go with the pods,
    and the token is nowhere but in them."""
    harness, namespace, env = deployment
    accounts = e2e_lab["accounts"][:2]
    with kubelet_standin(cluster, namespace, e2e_lab["docker_host"]) as kubelet:
        result = harness.dags_test(
            "ecr_kubernetes", timeout=420, extra_env={**env, "AIRFLOW_ECR_K8S_DEFERRABLE": "1" if deferrable else "0"}
        )
        events = cluster.request("GET", f"/api/v1/namespaces/{namespace}/events")["items"]
    assert result.rc == 0, result.describe() + f"\nstand-in errors: {kubelet.errors}\npulls: {kubelet.pulls}"
    assert not kubelet.errors, kubelet.errors
    assert len(kubelet.pods) == 2, kubelet.pods

    # Each pod pulled its image, from its account, with the Secret made for that very pod.
    images = {f"{a['host']}/app/hello:1" for a in accounts}
    assert {p.image for p in kubelet.pulls} == images, kubelet.pulls
    for pull in kubelet.pulls:
        assert pull.ok, pull
        assert pull.secret == f"{pull.pod}-ecr-pull", pull

    # One token call per account (the AWS connection of each mode), none failed.
    calls = ecr_admin.calls(access_key=result.access_key)
    assert sorted((c["region"], tuple(c["registry_ids"])) for c in calls) == sorted(
        (a["region"], (a["account_id"],)) for a in accounts
    ), calls

    # The pods were deleted (on_finish_action) and their Secrets went with them (garbage collector).
    assert cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"] == []
    assert wait_until_gone(cluster, namespace) == []

    # The token is in no log, no pod spec, no event: only in the Secret, now gone.
    passwords = ecr_admin.passwords([a["account_id"] for a in accounts])
    objects = {"pods": json.dumps(kubelet.pods), "events": json.dumps(events)}
    assert_no_secret({"output": result.output, **result.logs, **objects}, passwords)


def test_pods_run_the_pinned_or_resolved_digest_and_every_on_finish_action_keeps_its_secret_with_its_pod(
    cluster: Cluster,
    deployment: tuple[AirflowHarness, str, dict[str, str]],
    ecr_admin: EmulatorClient,
    e2e_lab: dict[str, Any],
) -> None:
    """The pinned digest, and the tag resolved with one manifest HEAD, go into the pod spec (the node
    pulls that digest) and into the ``ecr_image`` XCom; a kept pod keeps its Secret (owned by it), and
    the Secret goes when the pod is deleted later. An unmodified operator's Docker Hub image is pulled
    through the ECR pull-through cache with its pod's Secret (the mutation hook)."""
    harness, namespace, env = deployment
    with kubelet_standin(cluster, namespace, e2e_lab["docker_host"]) as kubelet:
        through_cache = {"AIRFLOW__ECR__PULL_THROUGH_CACHE": e2e_lab["pull_through_cache"]["option"]}
        result = harness.dags_test("ecr_kubernetes_digests", timeout=420, extra_env={**env, **through_cache})
    assert result.rc == 0, result.describe() + f"\nstand-in errors: {kubelet.errors}\npulls: {kubelet.pulls}"
    digest = harness.xcom("ecr_kubernetes_digests", "pin")[f"{e2e_lab['accounts'][0]['host']}/app/hello:1"]["digest"]
    repository = f"{e2e_lab['accounts'][0]['host']}/app/hello"
    pulled = {p.pod.rsplit("-", 1)[0]: p.image for p in kubelet.pulls if p.ok}
    docker_hub = f"{e2e_lab['accounts'][0]['host']}/docker-hub/library/busybox:1.36"
    assert sorted(pulled.values()) == sorted([f"{repository}@{digest}"] * 2 + [f"{repository}:1", docker_hub])
    assert all(p.secret == f"{p.pod}-ecr-pull" for p in kubelet.pulls), kubelet.pulls
    assert f"Pulling busybox:1.36 through the ECR pull-through cache as {docker_hub}" in result.all_text()
    for task in ("pinned", "resolved"):
        record = harness.xcom("ecr_kubernetes_digests", task, key="ecr_image")
        assert (record["digest"], record["image"], record["pinned"]) == (digest, f"{repository}:1", True), record
    assert harness.xcom("ecr_kubernetes_digests", "active", key="ecr_image")["digest"] == digest

    # delete_succeeded_pod deleted its (succeeded) pod; keep_pod and delete_active_pod (the pod is
    # over) kept theirs, each with its own Secret, owned by it.
    pods = cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
    kept = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}
    assert sorted(n.split("-", 1)[0] for n in kept) == ["active", "pinned"], kept
    owners = {
        s["metadata"]["name"]: s["metadata"].get("ownerReferences") or [] for s in pull_secrets(cluster, namespace)
    }
    assert owners == {
        f"{name}-ecr-pull": [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}]
        for name, uid in kept.items()
    }, owners
    for name in kept:
        cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}")
    assert wait_until_gone(cluster, namespace) == []
    assert_no_secret(
        {"output": result.output, **result.logs, "pods": json.dumps(kubelet.pods)},
        ecr_admin.passwords([e2e_lab["accounts"][0]["account_id"]]),
    )


def test_pods_run_only_the_digest_the_image_policy_checked(
    cluster: Cluster,
    deployment: tuple[AirflowHarness, str, dict[str, str]],
    e2e_lab: dict[str, Any],
    tmp_path: Path,
) -> None:
    """With ``[ecr] image_policy``: a signed image runs by the digest checked; an unsigned one is
    refused, by the operator and by the mutation hook for an unmodified KubernetesPodOperator, before
    its pod or its Secret exists (issue 26)."""
    harness, namespace, env = deployment
    account = e2e_lab["accounts"][0]
    suffix = uuid.uuid4().hex[:8]
    signed, unsigned = f"app/k8s-signed-{suffix}", f"app/k8s-unsigned-{suffix}"
    digest = push_marker_image(Path(e2e_lab["dir"]), account["account_id"], f"{signed}:1", "signed")
    push_marker_image(Path(e2e_lab["dir"]), account["account_id"], f"{unsigned}:1", "unsigned")
    pki = make_pki(tmp_path / "notation")
    registry = LabRegistry.of(Path(e2e_lab["dir"]))
    subject = registry.descriptor(signed, digest)
    envelope = notation_jws(pki.ca, notation_payload(digest, subject["size"], subject["mediaType"]))
    registry.push_notation(signed, digest, envelope, JWS_MEDIA_TYPE)
    trust_policy = tmp_path / "notation" / "trustpolicy.json"
    trust_policy.write_text(json.dumps({"version": "1.0", "trustPolicies": [{
        "name": "lab", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:lab"], "trustedIdentities": ["*"]}]}))  # fmt: skip
    notation = {"trustPolicy": str(trust_policy), "trustStore": str(tmp_path / "notation" / "truststore")}
    policy = tmp_path / "image-policy.json"
    rule = {"name": "lab-prod", "scopes": [f"{account['host']}/app/k8s-*"], "signature": {"notation": notation}}
    policy.write_text(json.dumps({"version": "1", "rules": [rule]}))
    images = {
        "AIRFLOW_ECR_POLICY_SIGNED": f"{account['host']}/{signed}:1",
        "AIRFLOW_ECR_POLICY_UNSIGNED": f"{account['host']}/{unsigned}:1",
        "AIRFLOW__ECR__IMAGE_POLICY": str(policy),
    }
    with kubelet_standin(cluster, namespace, e2e_lab["docker_host"]) as kubelet:
        result = harness.dags_test("ecr_kubernetes_policy", timeout=420, extra_env={**env, **images})
    assert result.rc != 0, result.describe()  # two of its tasks are refused
    # Only the signed image's pod was ever made, and it ran the digest checked.
    assert [p["metadata"]["name"].split("-", 1)[0] for p in kubelet.pods] == ["signed"], kubelet.pods
    assert [p.image for p in kubelet.pulls] == [f"{account['host']}/{signed}@{digest}"], kubelet.pulls
    record = harness.xcom("ecr_kubernetes_policy", "signed", key="ecr_image")
    assert record["policy"]["passed"] and record["policy"]["signature"]["identity"] == pki.ca.subject, record
    states = dict(harness.query("SELECT task_id, state FROM task_instance WHERE dag_id = 'ecr_kubernetes_policy'"))
    assert states == {"signed": "success", "unsigned": "failed", "unmodified": "failed"}, states
    assert f"Image policy 'lab-prod' refused {account['host']}/{unsigned}:1" in result.all_text(), result.describe()
    assert wait_until_gone(cluster, namespace) == []  # no Secret was left for the refused pods


def test_the_images_region_down_gives_the_pod_its_replicas_image_and_secret(
    cluster: Cluster, aws: Any, e2e_lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the image's ECR API down, the pod is made (in this process, against the real API server)
    with the replica's image, resolved there, and a Secret for the replica's registry only."""
    namespace = "replica"
    kubeconfig = cluster.kubeconfig("replica", cluster.namespace_with_role(namespace), namespace)
    connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig), "namespace": namespace}}
    monkeypatch.setenv("AIRFLOW_CONN_KUBE_LAB", json.dumps(connection))
    for name in ("NO_PROXY", "no_proxy"):  # `aws` proxies the registries; the API server is on loopback
        monkeypatch.setenv(name, "127.0.0.1")
    account = e2e_lab["accounts"][0]
    aws.faults(down_regions=[account["region"]])
    operator = EcrKubernetesPodOperator(
        task_id="replica",
        image=f"{account['host']}/app/hello:1",
        namespace=namespace,
        kubernetes_conn_id="kube_lab",
        aws_conn_id="aws_lab",
        fallback_regions=[REPLICA_REGION],
    )
    ti = SimpleNamespace(dag_id="d", task_id="replica", run_id="r", map_index=-1, try_number=1)
    pod = operator.build_pod_request_obj({"ti": ti, "run_id": "r", "dag": SimpleNamespace()})
    replica = f"{account['account_id']}.dkr.ecr.{REPLICA_REGION}.amazonaws.com"
    secret = f"{pod.metadata.name}-ecr-pull"
    try:
        assert pod.spec.containers[0].image == f"{replica}/app/hello:1"
        assert [s.name for s in pod.spec.image_pull_secrets] == [secret]
        data = cluster.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{secret}")["data"]
        assert list(json.loads(base64.b64decode(data[".dockerconfigjson"]))["auths"]) == [replica]
        assert [c["region"] for c in aws.calls()] == [account["region"], REPLICA_REGION]
    finally:
        cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{secret}")


def doctor(harness: AirflowHarness, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [str(harness.venv / "bin" / "airflow-ecr"), "doctor", "--json", *args],
        env=harness.env(extra=env),
        capture_output=True,
        text=True,
        timeout=180,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_doctor_checks_the_role_and_a_secret_round_trip(
    cluster: Cluster, deployment: tuple[AirflowHarness, str, dict[str, str]], ecr_admin: EmulatorClient,
    e2e_lab: dict[str, Any],
) -> None:  # fmt: skip
    """Doctor asks the API server for each verb of the Role, makes, reads back and deletes a pull
    secret, and has the registry accept what it read back; in a namespace without the Role it says so."""
    harness, namespace, env = deployment
    image = f"{e2e_lab['accounts'][0]['host']}/app/hello:1"
    common = ["--image", image, "--aws-conn-id", "aws_lab", "--kubernetes-conn-id", "kube_lab"]
    code, report = doctor(harness, env, *common, "--namespace", namespace)
    statuses = {c["name"]: c for c in report["checks"]}
    assert statuses["kubernetes_access"]["status"] == "ok", report
    assert statuses["kubernetes_secret"]["status"] == "ok", report
    assert statuses["kubernetes_secret"]["details"]["digest"].startswith("sha256:"), report
    assert pull_secrets(cluster, namespace) == [] and not [
        s for s in cluster.request("GET", f"/api/v1/namespaces/{namespace}/secrets")["items"]
        if s["metadata"]["name"].startswith("airflow-ecr-doctor-")
    ]  # fmt: skip

    cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": f"{namespace}-bare"}})
    code, report = doctor(harness, env, *common, "--namespace", f"{namespace}-bare")
    statuses = {c["name"]: c for c in report["checks"]}
    assert code == 9, report
    assert statuses["kubernetes_access"]["status"] == "fail"
    assert "create secrets" in statuses["kubernetes_access"]["fix"]
    assert statuses["kubernetes_secret"]["status"] == "skip"
    assert_no_secret({"report": json.dumps(report)}, ecr_admin.passwords([e2e_lab["accounts"][0]["account_id"]]))


def test_the_standin_pulls_an_ecr_image_only_with_a_secret(cluster: Cluster, e2e_lab: dict[str, Any]) -> None:
    """The control: without a pull secret the stand-in's pull of an ECR image is refused by the
    registry (ErrImagePull), as a kubelet's would be, so the tests above can only pass with the Secret."""
    namespace = "control"
    cluster.namespace_with_role(namespace)
    image = f"{e2e_lab['accounts'][0]['host']}/app/hello:1"
    pod = {"metadata": {"name": "no-secret"}, "spec": {"containers": [{"name": "base", "image": image}]}}
    with kubelet_standin(cluster, namespace, e2e_lab["docker_host"]) as kubelet:
        cluster.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
        deadline = time.monotonic() + 60
        while (
            "containerStatuses"
            not in (status := cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods/no-secret")["status"])
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
    cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/no-secret")
    assert [(p.image, p.secret, p.ok) for p in kubelet.pulls] == [(image, None, False)], kubelet.pulls
    assert "no basic auth credentials" in kubelet.pulls[0].error, kubelet.pulls[0].error
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull", status
