"""The pull secret of a pod, as data: which images need one, its name, contents and orphan rule."""

from __future__ import annotations

import base64
import datetime as dt
import json
from types import SimpleNamespace

from kubernetes.client import V1Container, V1ObjectMeta, V1OwnerReference, V1PodSpec

from airflow_ecr.images.pull_through import parse_pull_through_cache
from airflow_ecr.kubernetes.pull_secrets import (
    EXPIRES_ANNOTATION,
    LABEL,
    ORPHAN_AFTER,
    docker_config_json,
    ecr_registries,
    is_orphan,
    pod_images,
    pull_through_pod,
    secret_body,
    secret_name,
    tokens_in_secret,
)
from airflow_ecr.registry import declare_alias
from airflow_ecr.tokens.token import EcrToken

A = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
B = "222222222222.dkr.ecr.us-east-1.amazonaws.com"


def token(password: str, expires_at: float = 2_000_000_000.0) -> EcrToken:
    return EcrToken("AWS", password, f"https://{A}", expires_at, expires_at - 43_200)


def test_every_container_kind_counts_once() -> None:
    spec = V1PodSpec(
        init_containers=[V1Container(name="init", image=f"{A}/init:1")],
        containers=[V1Container(name="base", image=f"{B}/app:1"), V1Container(name="side", image=f"{A}/init:1")],
    )
    assert pod_images(spec) == [f"{A}/init:1", f"{B}/app:1"]


def test_only_ecr_images_and_declared_aliases_need_a_secret() -> None:
    alias = declare_alias("registry.example.com", "111111111111", "eu-west-1")
    images = [f"{A}/x:1", "busybox:1", "ghcr.io/o/r:1", f"{A}/y@sha256:{'a' * 64}", "registry.example.com/z:1"]
    found = ecr_registries(images, {alias.host: alias})
    assert [r.host for r in found] == [A, "registry.example.com"]
    assert ecr_registries(["busybox", "quay.io/x/y"], {}) == []


def test_secret_names_fit_and_follow_the_pod() -> None:
    assert secret_name("train-abc123") == "train-abc123-ecr-pull"
    long = secret_name("p" * 300)
    assert len(long) <= 253 and long.endswith("-ecr-pull")


def test_the_docker_config_holds_each_registry_and_nothing_else() -> None:
    config = json.loads(docker_config_json({A: token("pw-a-0123456789abcdef"), B: token("pw-b-0123456789abcdef")}))
    assert set(config) == {"auths"} and set(config["auths"]) == {A, B}
    assert base64.b64decode(config["auths"][B]["auth"]).decode() == "AWS:pw-b-0123456789abcdef"


def test_the_secret_is_typed_labelled_and_says_until_when() -> None:
    body = secret_body("p-ecr-pull", "p", {A: token("pw", 1_000), B: token("pw", 2_000)}, {A: "ka", B: "kb"})
    assert body["type"] == "kubernetes.io/dockerconfigjson"
    assert body["metadata"]["labels"] == {LABEL: "true"}
    assert body["metadata"]["annotations"][EXPIRES_ANNOTATION] == "1000"  # the first to expire
    assert "pw" not in json.dumps(body["metadata"])
    # What a task with an empty cache reads back: the same tokens, by cache key.
    read = tokens_in_secret(body["data"], body["metadata"]["annotations"])
    assert read == {"ka": token("pw", 1_000), "kb": token("pw", 2_000)}
    assert tokens_in_secret(body["data"], {}) == {} and tokens_in_secret({}, body["metadata"]["annotations"]) == {}


def meta(age: float, owned: bool = False, expires_in: float = 40_000, ours: bool = True) -> SimpleNamespace:
    now = dt.datetime.now(dt.timezone.utc)
    return SimpleNamespace(
        creation_timestamp=now - dt.timedelta(seconds=age),
        owner_references=[V1OwnerReference(api_version="v1", kind="Pod", name="p", uid="u")] if owned else None,
        labels={LABEL: "true"} if ours else {"app": "x"},
        annotations={EXPIRES_ANNOTATION: str(now.timestamp() + expires_in)},
    )


def test_an_unowned_secret_is_an_orphan_only_after_its_grace_or_expiry() -> None:
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    assert not is_orphan(meta(age=5), now)  # its pod is being created
    assert is_orphan(meta(age=ORPHAN_AFTER + 1), now)
    assert is_orphan(meta(age=5, expires_in=-1), now)
    assert not is_orphan(meta(age=ORPHAN_AFTER + 1, owned=True), now)  # the pod's, the GC's to delete
    assert not is_orphan(meta(age=ORPHAN_AFTER + 1, ours=False), now)  # not ours
    assert not is_orphan(V1ObjectMeta(labels={LABEL: "true"}), now)  # no date, no expiry: leave it


def test_every_container_whose_upstream_has_a_rule_is_pointed_at_the_cache_and_others_are_left_alone() -> None:
    cache = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
    rules = parse_pull_through_cache(f"docker.io={cache}/docker-hub")
    spec = V1PodSpec(
        init_containers=[V1Container(name="init", image="busybox:1.36")],
        containers=[
            V1Container(name="base", image="docker.io/library/busybox:1.36"),
            V1Container(name="ecr", image=f"{cache}/app/hello:1"),
            V1Container(name="ghcr", image="ghcr.io/org/tool:2"),
        ],
    )
    rewrites = pull_through_pod(spec, rules)
    images = [c.image for c in [*spec.init_containers, *spec.containers]]
    through = f"{cache}/docker-hub/library/busybox:1.36"
    assert images == [through, through, f"{cache}/app/hello:1", "ghcr.io/org/tool:2"]
    assert [(r.requested, r.image) for r in rewrites] == [
        ("busybox:1.36", through),
        ("docker.io/library/busybox:1.36", through),
    ]
    assert pull_through_pod(spec, rules) == []  # a second pass (the operator, then the hook) finds nothing
