"""
PullSecrets against a FAKE CoreV1Api (recording calls, answering like the API server) with tokens
from the in-process ECR emulator over real boto3. The real API server is in tests/e2e/test_kubernetes.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client import V1Container, V1LocalObjectReference, V1ObjectMeta, V1Pod, V1PodSpec
from kubernetes.client.exceptions import ApiException

from airflow_ecr import process_state
from airflow_ecr.exceptions import KubernetesPullSecretError
from airflow_ecr.kubernetes import mutation
from airflow_ecr.kubernetes.attach import PullSecrets
from airflow_ecr.kubernetes.pull_secrets import (
    LABEL,
    LEASE_SECONDS,
    ORPHAN_AFTER,
    TOKENS_ANNOTATION,
    lease_body,
    lease_name,
)
from airflow_ecr.testing import EcrEmulator, EmulatedAccount
from helpers.isolation import aws_test_connection, isolate_from_host

ACCT, REGION = "111111111111", "eu-west-1"
HOST = f"{ACCT}.dkr.ecr.{REGION}.amazonaws.com"


@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCT, REGION)]) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _isolated(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_host(monkeypatch, tmp_path, "AIRFLOW_CONN_")
    aws_test_connection(monkeypatch, emu.url, "AKIAKUBEUNIT", REGION)
    emu.reset()


class FakeCoreV1Api:
    """A FAKE of kubernetes.client.CoreV1Api: the secret calls airflow-ecr makes, recorded."""

    def __init__(self, refuse: int | None = None) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.refuse = refuse
        self.before_next_list: Callable[[], None] | None = None  # what another task does meanwhile

    def _maybe_refuse(self, call: str) -> None:
        self.calls.append(call)
        if self.refuse:
            raise ApiException(status=self.refuse, reason="Forbidden")

    def create_namespaced_secret(self, namespace: str, body: dict[str, Any]) -> None:
        self._maybe_refuse("create")
        if body["metadata"]["name"] in self.secrets:
            raise ApiException(status=409, reason="Conflict")
        self.secrets[body["metadata"]["name"]] = body

    def patch_namespaced_secret(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        self._maybe_refuse("patch")
        self.secrets[name]["metadata"].update(body["metadata"])

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        self._maybe_refuse("read")
        if name not in self.secrets:
            raise ApiException(status=404, reason="Not Found")
        return SimpleNamespace(
            metadata=V1ObjectMeta(name=name, annotations=self.secrets[name]["metadata"]["annotations"])
        )

    def list_namespaced_secret(self, namespace: str, label_selector: str) -> Any:
        self._maybe_refuse("list")
        if self.before_next_list is not None:
            self.before_next_list()
            self.before_next_list = None
        items = [
            SimpleNamespace(data=b.get("data"), metadata=V1ObjectMeta(name=n, labels=b["metadata"]["labels"],
                                                  annotations=b["metadata"]["annotations"],
                                                  creation_timestamp=b["metadata"].get("created"),
                                                  owner_references=b["metadata"].get("ownerReferences")))
            for n, b in self.secrets.items()
        ]  # fmt: skip
        return SimpleNamespace(items=items)

    def delete_namespaced_secret(self, name: str, namespace: str) -> None:
        self._maybe_refuse("delete")
        del self.secrets[name]


def pod(*images: str, pull_secrets: list[str] | None = None) -> V1Pod:
    return V1Pod(
        metadata=V1ObjectMeta(name="task-x1", namespace="jobs", labels={}),
        spec=V1PodSpec(
            containers=[V1Container(name=f"c{i}", image=image) for i, image in enumerate(images)],
            image_pull_secrets=[V1LocalObjectReference(name=n) for n in pull_secrets or []],
        ),
    )


def test_an_ecr_pod_gets_its_secret_and_keeps_the_others(emu: EcrEmulator) -> None:
    api = FakeCoreV1Api()
    request = pod(f"{HOST}/app:1", "busybox:1", pull_secrets=["mine"])
    assert PullSecrets(api).attach(request, "aws_test") == "task-x1-ecr-pull"
    assert [ref.name for ref in request.spec.image_pull_secrets] == ["mine", "task-x1-ecr-pull"]
    config = json.loads(base64.b64decode(api.secrets["task-x1-ecr-pull"]["data"][".dockerconfigjson"]))
    assert list(config["auths"]) == [HOST]  # busybox is Docker Hub's: left alone
    assert config["auths"][HOST]["password"] == emu.password(ACCT)[0]
    # The sweep's list, the fetch lease taken, the Secret, the lease released (nothing else of the
    # namespace asked ECR for these tokens meanwhile).
    assert api.calls == ["list", "create", "create", "delete"]
    assert list(api.secrets) == ["task-x1-ecr-pull"]
    # Made already (the hook and the operator both ran): nothing more.
    assert PullSecrets(api).attach(request, "aws_test") == "task-x1-ecr-pull"
    assert api.calls == ["list", "create", "create", "delete"]


def test_a_pod_without_ecr_images_is_left_alone() -> None:
    api = FakeCoreV1Api()
    request = pod("busybox:1", "quay.io/org/app:2")
    assert PullSecrets(api).attach(request, "aws_test") is None
    assert api.calls == [] and request.spec.image_pull_secrets == []


def test_a_refusal_is_one_sentence_naming_what_to_grant_and_no_token(emu: EcrEmulator) -> None:
    with pytest.raises(KubernetesPullSecretError) as err:
        PullSecrets(FakeCoreV1Api(refuse=403)).attach(pod(f"{HOST}/app:1"), "aws_test")
    message = str(err.value)
    assert message.startswith("Could not list the ECR pull secret") and "(HTTP 403 Forbidden)" in message
    assert "create, get, list, patch and delete on secrets" in message and message.count(". ") == 0
    assert emu.password(ACCT)[0] not in message


def test_orphans_are_swept_and_owned_secrets_kept() -> None:
    api = FakeCoreV1Api()
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=ORPHAN_AFTER + 5)
    meta = {"labels": {LABEL: "true"}, "annotations": {}, "created": old}
    api.secrets = {
        "orphan": {"metadata": dict(meta)},
        "owned": {"metadata": {**meta, "ownerReferences": [{"kind": "Pod"}]}},
        "fresh": {"metadata": {**meta, "created": dt.datetime.now(dt.timezone.utc)}},
    }
    kept = PullSecrets(api).sweep("jobs")
    assert sorted(s.metadata.name for s in kept) == ["fresh", "owned"]
    assert sorted(api.secrets) == ["fresh", "owned"]


def test_the_hook_acts_only_on_live_operator_launches(monkeypatch: pytest.MonkeyPatch) -> None:
    live = pod(f"{HOST}/app:1")
    live.metadata.labels = {"kubernetes_pod_operator": "True", "airflow_kpo_in_cluster": "False"}
    dry = pod(f"{HOST}/app:1")
    dry.metadata.labels = {"kubernetes_pod_operator": "True"}
    worker = pod(f"{HOST}/app:1")
    worker.metadata.labels = {"airflow-worker": "1"}
    assert mutation.launched_by_operator(live)
    assert not mutation.launched_by_operator(dry) and not mutation.launched_by_operator(worker)
    # Outside a task (the scheduler, the API server): nothing happens, not even a client.
    monkeypatch.setattr(mutation, "running_operator", lambda: None)
    mutation.add_pull_secret(live)
    assert live.spec.image_pull_secrets == []


def test_a_task_with_an_empty_cache_reuses_its_identitys_fresh_token_from_the_namespace(
    emu: EcrEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KubernetesExecutor: each task is a new pod with an empty host cache; the namespace's pull
    secrets stand in for the cluster-wide cache, for the same identity only."""
    api = FakeCoreV1Api()
    PullSecrets(api).attach(pod(f"{HOST}/app:1"), "aws_test")
    assert len(emu.calls()) == 1
    second = pod(f"{HOST}/app:1")
    second.metadata.name = "task-x2"
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "another-pods-cache"))
    process_state.reset()
    PullSecrets(api).attach(second, "aws_test")
    assert len(emu.calls()) == 1  # read back, not fetched
    first, again = (json.loads(base64.b64decode(api.secrets[n]["data"][".dockerconfigjson"])) for n in
                    ("task-x1-ecr-pull", "task-x2-ecr-pull"))  # fmt: skip
    assert first == again
    # Another identity (another access key) never takes it.
    aws_test_connection(monkeypatch, emu.url, "AKIAKUBEOTHER", REGION)
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "a-third-pods-cache"))
    process_state.reset()
    third = pod(f"{HOST}/app:1")
    third.metadata.name = "task-x3"
    PullSecrets(api).attach(third, "aws_test")
    assert len(emu.calls()) == 2


def test_a_task_that_finds_the_fetch_lease_held_waits_for_the_holders_secret_instead_of_asking_ecr(
    emu: EcrEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KubernetesExecutor pods released at the same instant: one takes the namespace's fetch lease and
    asks ECR; another, finding it held, waits for the holder's pull secret and adopts its token."""
    api = FakeCoreV1Api()
    PullSecrets(api).attach(pod(f"{HOST}/app:1"), "aws_test")  # the holder's work, done beforehand
    holders = api.secrets.pop("task-x1-ecr-pull")
    key = json.loads(holders["metadata"]["annotations"][TOKENS_ANNOTATION])[HOST]["key"]
    lease = lease_name([key])
    api.secrets[lease] = lease_body(lease, "task-x1", time.time())  # ... while it still holds the lease

    def holder_finishes() -> None:
        api.secrets["task-x1-ecr-pull"] = holders
        del api.secrets[lease]

    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "another-pods-cache"))
    process_state.reset()
    second = pod(f"{HOST}/app:1")
    second.metadata.name = "task-x2"
    api.calls.clear()
    original_read = api.read_namespaced_secret

    def read_then_let_the_holder_finish(name: str, namespace: str) -> Any:
        answer = original_read(name, namespace)
        api.before_next_list = holder_finishes
        return answer

    monkeypatch.setattr(api, "read_namespaced_secret", read_then_let_the_holder_finish)
    PullSecrets(api).attach(second, "aws_test")
    assert len(emu.calls()) == 1  # the holder's call only
    # The sweep, the lease found held and read, the holder's Secret found (adopted), ours made.
    assert api.calls == ["list", "create", "read", "list", "create"]
    assert api.secrets["task-x2-ecr-pull"]["data"] == holders["data"]


def test_a_fetch_lease_left_behind_by_a_dead_task_is_swept_once_expired(emu: EcrEmulator) -> None:
    api = FakeCoreV1Api()
    request = pod(f"{HOST}/app:1")
    stale = lease_name(["whatever"])
    api.secrets[stale] = lease_body(stale, "task-gone", time.time() - LEASE_SECONDS - 1)
    PullSecrets(api).attach(request, "aws_test")
    assert list(api.secrets) == ["task-x1-ecr-pull"]
    assert api.calls[:2] == ["list", "delete"]
