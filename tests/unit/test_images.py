"""Image names, the ``ecr_image`` record, pins, and the manifest API (a fake registry over real TLS and a proxy)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from typing import Any

import pytest

from airflow_ecr.exceptions import (
    EcrConfigurationError,
    EcrImageNotFoundError,
    EcrPullError,
    EcrRegistryUnavailableError,
)
from airflow_ecr.images.manifests import DOCKER_LIST, RegistryRejected, fetch_manifest
from airflow_ecr.images.pins import Pin, pin_for, pins_as_xcom
from airflow_ecr.images.record import build_record
from airflow_ecr.images.reference import digest_in_pull_status, repo_digests_for
from airflow_ecr.registry import ImageReference
from helpers.fake_registry import DOCKER_MANIFEST, MANIFEST, MANIFEST_DIGEST, fake_registry

HOST = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
D1, D2, D3 = ("sha256:" + c * 64 for c in "abc")
AUTH = {"username": "AWS", "password": "pw-for-the-test"}


# -- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (f"{HOST}/app:1", (HOST, "app", "1", None)),
        (f"{HOST}/team/app", (HOST, "team/app", "latest", None)),
        (f"{HOST}/app@{D1}", (HOST, "app", None, D1)),
        (f"{HOST}/app:1@{D1}", (HOST, "app", "1", D1)),
        ("localhost:5000/app:2", ("localhost:5000", "app", "2", None)),
    ],
)
def test_image_names_split_as_docker_splits_them(image: str, expected: tuple[Any, ...]) -> None:
    name = ImageReference.parse(image)
    assert (name.host, name.repository, name.tag, name.digest) == expected


def test_a_name_without_host_or_tag_means_dockers_defaults_and_says_so() -> None:
    bare, spelled = ImageReference.parse("busybox"), ImageReference.parse("docker.io/busybox:latest")
    assert bare == spelled and hash(bare) == hash(spelled)  # the same image, as Docker pulls it
    assert (bare.host, bare.tag, bare.host_given, bare.tag_given) == ("docker.io", "latest", False, False)
    assert (spelled.host_given, spelled.tag_given) == (True, True)
    assert ImageReference.parse(f"{HOST}/app@{D1}").tag_given is False


def test_the_one_model_splits_what_docker_pys_split_did_not() -> None:
    # docker-py's split (the hooks' and operators' until the models were one) took index.docker.io for
    # docker.io, and any digest but sha256 for a tag; the host is now kept as written, the digest a digest.
    assert ImageReference.parse("index.docker.io/busybox").host == "index.docker.io"
    sha512 = "sha512:" + "e" * 128
    pinned = ImageReference.parse(f"{HOST}/app@{sha512}")
    assert (pinned.tag, pinned.digest) == (None, sha512)


def test_a_name_on_another_host_and_by_a_digest() -> None:
    name = ImageReference.parse(f"{HOST}/team/app")
    assert name.name_on_host("replica.example") == "replica.example/team/app:latest"
    assert name.name_by_digest(D1) == f"{HOST}/team/app@{D1}"
    assert ImageReference.parse(f"{HOST}/app:1@{D1}").name_on_host(HOST) == f"{HOST}/app:1@{D1}"


def test_pull_status_and_repo_digests_give_only_this_repositorys_digests() -> None:
    assert digest_in_pull_status({"status": f"Digest: {D1}"}) == D1
    assert digest_in_pull_status({"status": "Digest: sha256:short"}) is None
    assert digest_in_pull_status({"status": "Pulling fs layer", "id": "x"}) is None
    inspect = {"RepoDigests": [f"{HOST}/app@{D1}", f"{HOST}/app-other@{D2}", f"other.example/app@{D3}"]}
    assert repo_digests_for(inspect, ImageReference.parse(f"{HOST}/app:1")) == [D1]


# -- the record ----------------------------------------------------------------------------------
def test_a_pull_records_the_digest_it_reported() -> None:
    record = build_record(f"{HOST}/app:1", "eu-west-1", True, D1, {"RepoDigests": [f"{HOST}/app@{D2}"]}, None)
    value = record.as_xcom()
    json.dumps(value)
    assert value == {
        **value,
        "image": f"{HOST}/app:1",
        "registry": HOST,
        "repository": "app",
        "tag": "1",
        "digest": D1,
        "reference": f"{HOST}/app@{D1}",
        "region": "eu-west-1",
        "pulled": True,
        "pinned": False,
    }
    assert record.log_line == f"Running {HOST}/app@{D1} ({HOST}/app:1)"


def test_a_local_image_is_recorded_from_repo_digests_or_says_why_not() -> None:
    local = {"RepoDigests": [f"{HOST}/app@{D2}"], "Os": "linux", "Architecture": "arm64", "Variant": "v8"}
    record = build_record(f"{HOST}/app:1", "eu-west-1", False, None, local, None)
    assert (record.digest, record.platform, record.note) == (D2, "linux/arm64/v8", None)

    never = build_record(f"{HOST}/app:1", "eu-west-1", False, None, {"RepoDigests": []}, None)
    assert never.digest is None and never.reference is None
    assert never.note == (
        f"Image {HOST}/app:1 is local but was never pulled from {HOST} (built or tagged here): no digest is recorded."
    )
    several = build_record(
        f"{HOST}/app:1", "eu-west-1", False, None, {"RepoDigests": [f"{HOST}/app@{D1}", f"{HOST}/app@{D2}"]}, None
    )
    assert several.digest is None and "resolve_digest=True" in str(several.note)


def test_a_pinned_multi_arch_image_records_the_index_and_the_platform_that_ran() -> None:
    pin = Pin(D1, DOCKER_LIST, "2026-12-01T10:00:00Z", {"linux/amd64": D2, "linux/arm64": D3})
    record = build_record(f"{HOST}/app:1", "eu-west-1", True, D1, {"Os": "linux", "Architecture": "arm64"}, pin)
    value = record.as_xcom()
    assert (value["digest"], value["platform_digest"], value["pinned"]) == (D1, D3, True)
    assert value["resolved_at"] == "2026-12-01T10:00:00Z"


def test_pins_round_trip_and_refuse_what_they_cannot_serve() -> None:
    name = ImageReference.parse(f"{HOST}/app:1")
    value = pins_as_xcom({name: Pin(D1, DOCKER_MANIFEST, "2026-12-01T10:00:00Z")}, {name: f"{HOST}/app:1"})
    assert pin_for(json.loads(json.dumps(value)), name, f"{HOST}/app:1").digest == D1
    with pytest.raises(EcrConfigurationError, match=r"is not among the pinned images \(.*app:1\): add it"):
        pin_for(value, ImageReference.parse(f"{HOST}/other:1"), f"{HOST}/other:1")
    with pytest.raises(EcrConfigurationError, match=r"pinned_images must be the pin task's result"):
        pin_for(["not", "pins"], name, f"{HOST}/app:1")
    with pytest.raises(EcrConfigurationError, match=r"already names a digest"):
        pin_for(value, ImageReference.parse(f"{HOST}/app@{D1}"), f"{HOST}/app@{D1}")
    broken = {name.tagged: {"digest": "sha256:nope", "resolved_at": "x"}}
    with pytest.raises(EcrConfigurationError, match=r"is malformed"):
        pin_for(broken, name, f"{HOST}/app:1")


# -- the manifest API ----------------------------------------------------------------------------
def index_of(*entries: tuple[str, str]) -> bytes:
    manifests = []
    for platform, digest in entries:
        os_name, architecture = platform.split("/")
        manifests.append({"mediaType": DOCKER_MANIFEST, "digest": digest, "size": 1,
                          "platform": {"os": os_name, "architecture": architecture}})  # fmt: skip
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": manifests}).encode()


def fetch(tmp_path, route, image: str = f"{HOST}/app:1"):
    with fake_registry(tmp_path, [HOST, "redirected.example.com"], route) as world:
        try:
            return fetch_manifest(world.session(), ImageReference.parse(image), AUTH, timeout=10), world.seen
        except Exception as err:
            return err, world.seen


def test_an_ecr_like_registry_answers_one_head_with_the_token(tmp_path) -> None:
    manifest, seen = fetch(
        tmp_path, lambda m, p: (200, {"Docker-Content-Digest": D1, "Content-Type": DOCKER_MANIFEST}, b"{}")
    )
    assert (manifest.digest, manifest.media_type, manifest.requests) == (D1, DOCKER_MANIFEST, 1)
    assert [(s.method, s.host, s.path, s.password) for s in seen] == [
        ("HEAD", HOST, "/v2/app/manifests/1", AUTH["password"])
    ]


@pytest.mark.parametrize(
    "head",
    [(405, {}, b""), (501, {}, b""), (200, {"Content-Type": DOCKER_MANIFEST}, b"")],
    ids=["405", "501", "no-digest-header"],
)
def test_a_registry_that_does_not_answer_head_like_ecr_is_asked_with_get(tmp_path, head) -> None:
    def route(method: str, path: str):
        return head if method == "HEAD" else (200, {"Content-Type": DOCKER_MANIFEST}, MANIFEST)

    manifest, seen = fetch(tmp_path, route)
    assert manifest.digest == MANIFEST_DIGEST  # the body's own hash
    assert [(s.method, "/blobs/" in s.path) for s in seen] == [("HEAD", False), ("GET", False)]


def test_a_multi_arch_tag_gives_the_index_digest_and_each_platform(tmp_path) -> None:
    body = index_of(("linux/amd64", D2), ("linux/arm64", D3))
    digest = "sha256:" + hashlib.sha256(body).hexdigest()

    def route(method: str, path: str):
        return 200, {"Docker-Content-Digest": digest, "Content-Type": DOCKER_LIST}, body

    manifest, seen = fetch(tmp_path, route)
    assert (manifest.digest, manifest.platforms) == (digest, {"linux/amd64": D2, "linux/arm64": D3})
    assert [s.path for s in seen] == ["/v2/app/manifests/1", f"/v2/app/manifests/{digest}"]


def test_a_manifest_whose_body_does_not_match_its_digest_is_refused(tmp_path) -> None:
    def route(method: str, path: str):
        return (405, {}, b"") if method == "HEAD" else (200, {"Docker-Content-Digest": D1}, MANIFEST)

    err, _ = fetch(tmp_path, route)
    assert isinstance(err, EcrRegistryUnavailableError) and "does not match its digest" in str(err)


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (404, EcrImageNotFoundError, f"Image {HOST}/app:1 does not exist in {HOST}: check the repository name and tag"),
        (403, EcrPullError, "give the AWS identity ecr:BatchGetImage"),
        (503, EcrRegistryUnavailableError, "answered HTTP 503"),
        (401, RegistryRejected, HOST),
    ],
)
def test_refusals_and_outages_are_one_sentence_each(tmp_path, status, error, text) -> None:
    err, _ = fetch(tmp_path, lambda m, p: (status, {}, b""))
    assert isinstance(err, error) and text in str(err), err
    assert AUTH["password"] not in str(err)


def test_a_redirect_is_not_followed_so_the_token_stays_with_the_registry(tmp_path) -> None:
    """Fails if requests followed redirects: the Authorization header would reach the other host."""

    def route(method: str, path: str):
        if path.startswith("/elsewhere"):
            return 200, {"Docker-Content-Digest": D1, "Content-Type": DOCKER_MANIFEST}, b"{}"
        return 307, {"Location": "https://redirected.example.com/elsewhere"}, b""

    err, seen = fetch(tmp_path, route)
    assert isinstance(err, EcrRegistryUnavailableError) and "a redirect, not followed" in str(err)
    assert {s.host for s in seen} == {HOST}


def test_the_operators_import_nothing_of_openlineage() -> None:
    """Until the OpenLineage provider calls us, we import nothing of it (Airflow reads its provider info)."""
    code = (
        "import sys, airflow, airflow.providers.docker.operators.docker, airflow.providers.docker.decorators.docker\n"
        "before = {m for m in sys.modules if 'openlineage' in m}\n"
        "import airflow_ecr.operators.docker, airflow_ecr.operators.images, airflow_ecr.decorators.docker\n"
        "import airflow_ecr.lineage\n"  # importable without the provider too (the release check imports it)
        "new = {m for m in sys.modules if 'openlineage' in m} - before\n"
        "print(sorted(new))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
