"""Signature discovery (:mod:`airflow_ecr.trust.referrers`) where the lab's real registry cannot show it.

The lab's docker-registry has no referrers API (tests/e2e/test_signatures_registry.py covers the
tag-schema fallback and the cosign tag there). The cases below need a registry that *has* the API
(200 with ``Link`` pagination), one that lies (a blob or manifest whose bytes do not match their
digest), ECR's blob redirect to S3, and failures: :class:`FakeRegistry` is a fake standing in for a
``requests.Session`` and answers from a table of URLs with real ``requests.Response`` objects.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import requests

from airflow_ecr.exceptions import EcrPullError, EcrRegistryUnavailableError
from airflow_ecr.registry import ImageReference
from airflow_ecr.trust.cosign import ARTIFACT_TYPE as COSIGN
from airflow_ecr.trust.cosign import SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE
from airflow_ecr.trust.envelopes import NOTATION_ARTIFACT_TYPE as NOTATION
from airflow_ecr.trust.referrers import signatures_of

HOST = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
NAME = ImageReference.parse(f"{HOST}/app:1")
BASE = f"https://{HOST}/v2/app"
SUBJECT = "sha256:" + "a" * 64
AUTH = {"username": "AWS", "password": "token"}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """A fake registry behind a fake ``requests.Session``: URL -> (status, body, headers); 404 otherwise."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.asked: list[tuple[str, dict[str, str]]] = []

    def serve(self, url: str, body: bytes, status: int = 200, **headers: str) -> None:
        self.routes[url] = (status, body, headers)

    def blob(self, data: bytes) -> dict[str, Any]:
        self.serve(f"{BASE}/blobs/{sha(data)}", data)
        return {"digest": sha(data), "size": len(data)}

    def manifest(self, document: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(document).encode()
        self.serve(f"{BASE}/manifests/{sha(body)}", body, **{"Content-Type": document["mediaType"]})
        return {"mediaType": document["mediaType"], "digest": sha(body), "size": len(body)}

    def request(self, method: str, url: str, headers: dict[str, str], allow_redirects: bool, timeout: float) -> Any:
        assert method == "GET"
        assert allow_redirects is False
        self.asked.append((url, dict(headers)))
        status, body, extra = self.routes.get(url, (404, b'{"errors":[]}', {}))
        response = requests.Response()
        response.status_code, response._content, response.url = status, body, url
        response.headers.update(extra)
        return response


def notation_manifest(registry: FakeRegistry, envelope: bytes, subject: str = SUBJECT) -> dict[str, Any]:
    descriptor = registry.manifest(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": NOTATION,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", **registry.blob(b"{}")},
            "layers": [{"mediaType": "application/jose+json", **registry.blob(envelope)}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 1},
        }
    )
    return {**descriptor, "artifactType": NOTATION}


def cosign_manifest(registry: FakeRegistry, payload: bytes, signature: str) -> dict[str, Any]:
    layer = {
        "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
        **registry.blob(payload),
        "annotations": {SIGNATURE_ANNOTATION: signature},
    }
    descriptor = registry.manifest(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": COSIGN,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", **registry.blob(b"{}")},
            "layers": [layer],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": SUBJECT, "size": 1},
        }
    )
    return {**descriptor, "artifactType": COSIGN}


def index(*descriptors: dict[str, Any]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": list(descriptors)}
    ).encode()


def test_the_referrers_api_with_pages_and_artifact_type_filtering() -> None:
    registry = FakeRegistry()
    first, second = notation_manifest(registry, b'{"jws": 1}'), cosign_manifest(registry, b"payload", "c2ln")
    sbom = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "c" * 64, "size": 9}
    page_two = f"{BASE}/referrers/{SUBJECT}?n=2&last=x"
    registry.serve(
        f"{BASE}/referrers/{SUBJECT}",
        index(first, {**sbom, "artifactType": "application/spdx+json"}),
        Link=f'</v2/app/referrers/{SUBJECT}?n=2&last=x>; rel="next"',
    )
    registry.serve(page_two, index(second))

    found = signatures_of(registry, NAME, SUBJECT, AUTH, [NOTATION, COSIGN])

    assert found.referrers_api
    assert [(a.format, a.source, a.blob, a.signature_b64) for a in found] == [
        ("notation", "referrers-api", b'{"jws": 1}', None),
        ("cosign", "referrers-api", b"payload", "c2ln"),
    ]
    assert found[0].media_type == "application/jose+json"
    assert found[0].manifest_digest == first["digest"]
    # Two pages, two manifests and two blobs, and the .sig tag (cosign is wanted): the SBOM never fetched.
    assert found.requests == len(registry.asked) == 7
    assert not any(sbom["digest"] in url for url, _ in registry.asked)
    assert all(headers["Authorization"] == "Basic QVdTOnRva2Vu" for url, headers in registry.asked)


def test_only_wanted_types_are_returned() -> None:
    registry = FakeRegistry()
    registry.serve(
        f"{BASE}/referrers/{SUBJECT}", index(notation_manifest(registry, b"e"), cosign_manifest(registry, b"p", "s"))
    )
    found = signatures_of(registry, NAME, SUBJECT, AUTH, [NOTATION])
    assert [a.format for a in found] == ["notation"]
    assert not any(url.endswith(".sig") for url, _ in registry.asked)  # cosign not wanted: no .sig lookup


def test_a_blob_that_does_not_match_its_digest_is_refused() -> None:
    registry = FakeRegistry()
    descriptor = notation_manifest(registry, b"the real envelope")
    registry.serve(f"{BASE}/blobs/{sha(b'the real envelope')}", b"a forged envelope")
    registry.serve(f"{BASE}/referrers/{SUBJECT}", index(descriptor))
    with pytest.raises(EcrRegistryUnavailableError, match="does not match its digest"):
        signatures_of(registry, NAME, SUBJECT, AUTH, [NOTATION])


def test_a_manifest_that_does_not_match_its_digest_is_refused() -> None:
    registry = FakeRegistry()
    descriptor = notation_manifest(registry, b"envelope")
    registry.serve(f"{BASE}/manifests/{descriptor['digest']}", b'{"layers": []}')
    registry.serve(f"{BASE}/referrers/{SUBJECT}", index(descriptor))
    with pytest.raises(EcrRegistryUnavailableError, match="signature manifest"):
        signatures_of(registry, NAME, SUBJECT, AUTH, [NOTATION])


def test_a_listed_signature_of_another_subject_is_ignored() -> None:
    registry = FakeRegistry()
    registry.serve(
        f"{BASE}/referrers/{SUBJECT}", index(notation_manifest(registry, b"e", subject="sha256:" + "d" * 64))
    )
    assert list(signatures_of(registry, NAME, SUBJECT, AUTH, [NOTATION])) == []


def test_ecrs_blob_redirect_is_followed_without_the_token() -> None:
    registry = FakeRegistry()
    descriptor = notation_manifest(registry, b"envelope")
    s3 = "https://prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com/x?X-Amz-Signature=abc"
    registry.serve(f"{BASE}/blobs/{sha(b'envelope')}", b"", status=307, Location=s3)
    registry.serve(s3, b"envelope")
    registry.serve(f"{BASE}/referrers/{SUBJECT}", index(descriptor))
    found = signatures_of(registry, NAME, SUBJECT, AUTH, [NOTATION])
    assert found[0].blob == b"envelope"
    to_s3 = [headers for url, headers in registry.asked if url == s3]
    assert to_s3 == [{"Accept": "*/*"}]


def test_a_next_page_on_another_host_is_refused() -> None:
    registry = FakeRegistry()
    registry.serve(f"{BASE}/referrers/{SUBJECT}", index(), Link='<https://evil.example/v2/app/referrers/x>; rel="next"')
    with pytest.raises(EcrRegistryUnavailableError, match="another host"):
        signatures_of(registry, NAME, SUBJECT, AUTH, [NOTATION])


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [(403, EcrPullError, "ecr:BatchGetImage"), (503, EcrRegistryUnavailableError, "HTTP 503")],
)
def test_refusals_and_outages_are_one_sentence(status: int, error: type, text: str) -> None:
    registry = FakeRegistry()
    registry.serve(f"{BASE}/referrers/{SUBJECT}", b"", status=status)
    with pytest.raises(error, match=text):
        signatures_of(registry, NAME, SUBJECT, AUTH, [NOTATION])


def test_a_refused_blob_names_get_download_url_for_layer() -> None:
    registry = FakeRegistry()
    descriptor = notation_manifest(registry, b"envelope")
    registry.serve(f"{BASE}/blobs/{sha(b'envelope')}", b"", status=403)
    registry.serve(f"{BASE}/referrers/{SUBJECT}", index(descriptor))
    with pytest.raises(EcrPullError, match="ecr:GetDownloadUrlForLayer"):
        signatures_of(registry, NAME, SUBJECT, AUTH, [NOTATION])


def test_an_unreachable_registry_is_one_sentence() -> None:
    class Unreachable:
        def request(self, *args: Any, **kwargs: Any) -> Any:
            raise requests.ConnectionError("refused")

    with pytest.raises(EcrRegistryUnavailableError, match=r"could not be reached.*ConnectionError"):
        signatures_of(Unreachable(), NAME, SUBJECT, AUTH, [NOTATION])
