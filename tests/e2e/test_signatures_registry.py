"""Signatures in the lab's real registry (:mod:`airflow_ecr.trust.referrers`): pushed by the lab's
signer (:mod:`airflow_ecr_lab.signing`), found through the referrers tag schema (docker-registry
2.8.2 has no referrers API: it answers 404) and cosign's ``.sig`` tag, and verified."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from airflow_ecr.registry import ImageReference
from airflow_ecr.trust.cosign import ARTIFACT_TYPE as COSIGN
from airflow_ecr.trust.cosign import CosignKey, verify_cosign
from airflow_ecr.trust.envelopes import COSE_MEDIA_TYPE, JWS_MEDIA_TYPE
from airflow_ecr.trust.envelopes import NOTATION_ARTIFACT_TYPE as NOTATION
from airflow_ecr.trust.referrers import signatures_of
from airflow_ecr_lab.repository import push_marker_image, registry_requests
from airflow_ecr_lab.signing import (
    LabRegistry,
    cosign_payload,
    cosign_sign,
    make_pki,
    new_key,
    notation_cose,
    notation_jws,
    notation_payload,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


@pytest.fixture
def image(lab) -> tuple[ImageReference, str]:
    """A fresh image in the first account's registry, and its digest."""
    repository = f"app/signed-{uuid.uuid4().hex[:8]}"
    digest = push_marker_image(lab.dir, lab.account()["account_id"], f"{repository}:1", "signed")
    return ImageReference.parse(f"{lab.account()['host']}/{repository}:1"), digest


@pytest.fixture
def session(lab, monkeypatch) -> requests.Session:
    """What a task process has: the registries through the lab's proxy, the lab CA trusted."""
    monkeypatch.setenv("HTTPS_PROXY", lab.raw["https_proxy"])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", lab.raw["ca_cert"])
    return requests.Session()


def test_signatures_pushed_in_every_form_are_found_and_verify(lab, image, session, tmp_path: Path) -> None:
    name, digest = image
    registry = LabRegistry.of(lab.dir)
    subject = registry.descriptor(name.repository, digest)
    payload = notation_payload(digest, subject["size"], subject["mediaType"])
    pki = make_pki(tmp_path)
    jws = notation_jws(pki.ca, payload)
    cose = notation_cose(pki.authority, payload, signing_scheme="notary.x509.signingAuthority")
    key = new_key()
    signed = cosign_payload(digest, name.repository_path)
    signature = cosign_sign(key, signed)

    jws_manifest = registry.push_notation(name.repository, digest, jws, JWS_MEDIA_TYPE)
    cose_manifest = registry.push_notation(name.repository, digest, cose, COSE_MEDIA_TYPE)
    registry.push_cosign_tag(name.repository, digest, signed, signature)

    account = lab.account()["account_id"]
    before = len(registry_requests(lab.dir, account))
    found = signatures_of(session, name, digest, registry.auth, [NOTATION, COSIGN])
    served = registry_requests(lab.dir, account)[before:]

    assert not found.referrers_api
    assert served[0].path.endswith(f"/referrers/{digest}") and served[0].status == 404  # the real registry's answer
    assert found.requests == len(served)
    by_source = {(a.format, a.media_type, a.source): a for a in found}
    assert set(by_source) == {
        ("notation", JWS_MEDIA_TYPE, "tag-schema"),
        ("notation", COSE_MEDIA_TYPE, "tag-schema"),
        ("cosign", "application/vnd.dev.cosign.simplesigning.v1+json", "cosign-tag"),
    }
    assert by_source["notation", JWS_MEDIA_TYPE, "tag-schema"].blob == jws
    assert by_source["notation", JWS_MEDIA_TYPE, "tag-schema"].manifest_digest == jws_manifest
    assert by_source["notation", COSE_MEDIA_TYPE, "tag-schema"].blob == cose
    assert by_source["notation", COSE_MEDIA_TYPE, "tag-schema"].manifest_digest == cose_manifest

    cosign = by_source["cosign", "application/vnd.dev.cosign.simplesigning.v1+json", "cosign-tag"]
    trusted = CosignKey("lab-cosign-key", key.public_key())
    assert cosign.signature_b64 is not None
    result = verify_cosign(cosign.blob, cosign.signature_b64, digest, [trusted], name.name_by_digest(digest))
    assert result.verified, result.reason
    assert result.identity == "lab-cosign-key"
    # Another key, or the image's other digest, must not pass with the same artifact.
    assert not verify_cosign(
        cosign.blob, cosign.signature_b64, digest, [CosignKey("other", new_key().public_key())]
    ).verified


def test_cosign_referrers_form_and_only_wanted_types(lab, image, session) -> None:
    name, digest = image
    registry = LabRegistry.of(lab.dir)
    key = new_key("ec-p384")
    signed = cosign_payload(digest, name.repository_path)
    manifest = registry.push_cosign_referrer(name.repository, digest, signed, cosign_sign(key, signed))
    registry.push_notation(name.repository, digest, b'{"not": "read"}', JWS_MEDIA_TYPE)

    found = signatures_of(session, name, digest, registry.auth, [COSIGN])
    assert [(a.format, a.source, a.manifest_digest) for a in found] == [("cosign", "tag-schema", manifest)]
    assert verify_cosign(
        found[0].blob, found[0].signature_b64 or "", digest, [CosignKey("k", key.public_key())]
    ).verified


def test_an_unsigned_image_has_no_signatures(lab, image, session) -> None:
    name, digest = image
    registry = LabRegistry.of(lab.dir)
    found = signatures_of(session, name, digest, registry.auth, [NOTATION, COSIGN])
    assert list(found) == []
    assert found.requests == 3  # referrers API (404), tag schema (404), cosign tag (404)


def test_a_signature_of_another_image_is_not_this_ones(lab, image, session) -> None:
    name, digest = image
    registry = LabRegistry.of(lab.dir)
    other = push_marker_image(lab.dir, lab.account()["account_id"], f"{name.repository}:2", "other")
    registry.push_notation(name.repository, other, b"{}", JWS_MEDIA_TYPE)
    assert list(signatures_of(session, name, digest, registry.auth, [NOTATION])) == []
    assert len(signatures_of(session, name, other, registry.auth, [NOTATION])) == 1


def test_a_wrong_password_names_the_permission(lab, image, session) -> None:
    from airflow_ecr.exceptions import EcrPullError

    name, digest = image
    with pytest.raises(EcrPullError, match="ecr:BatchGetImage"):
        signatures_of(session, name, digest, {"username": "AWS", "password": "wrong"}, [NOTATION])
