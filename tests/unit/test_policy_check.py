"""The image policy's one entry point (``trust/check.py``): rules combined into a verdict, and its sentences.

The signatures are real (made by the lab's signer with ``cryptography``, ``joserfc`` and ``cbor2``)
and verified by the real verifiers; what the registry and AWS would answer comes from
``FakePolicyIO``, a FAKE named as such (the lab tests, tests/e2e/test_image_policy_lab.py, ask the real ones).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr.exceptions import EcrImagePolicyError
from airflow_ecr.registry import ImageReference
from airflow_ecr.trust.check import check_digest
from airflow_ecr.trust.envelopes import JWS_MEDIA_TYPE
from airflow_ecr.trust.notation import RevocationAnswer, RevocationQuery
from airflow_ecr.trust.outcome import Verdict
from airflow_ecr.trust.policy import ImageRule, SignatureRule
from airflow_ecr.trust.referrers import SignatureArtifact
from airflow_ecr.trust.scan import ScanReport, ScanRule
from airflow_ecr_lab.signing import LabPki, cosign_payload, cosign_sign, make_pki, new_key, notation_jws, public_pem

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml/train:2.4"
NAME = ImageReference.parse(IMAGE)
DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
NOW = datetime.datetime.now(datetime.timezone.utc)


class FakePolicyIO:
    """A FAKE registry and AWS: the signatures and scan report it is given; it records what was asked."""

    def __init__(self, artifacts: list[SignatureArtifact], report: ScanReport | None = None) -> None:
        self.artifacts, self.report = artifacts, report
        self.asked: list[str] = []

    def scan_report(self, name: ImageReference, digest: str, wait_seconds: float) -> ScanReport:
        self.asked.append("scan")
        assert self.report is not None
        return self.report

    def signatures(self, name: ImageReference, digest: str, artifact_types: Collection[str]) -> list[SignatureArtifact]:
        self.asked.append("signatures")
        return self.artifacts

    def kms_public_key(self, key_id: str) -> bytes:
        raise AssertionError("no KMS key in these tests")

    def revocation(self, query: RevocationQuery) -> RevocationAnswer:
        return RevocationAnswer(())


@pytest.fixture
def pki(tmp_path: Path) -> LabPki:
    return make_pki(tmp_path)


def trust_policy(pki: LabPki, scopes: list[str], level: str = "strict") -> Path:
    statement: dict[str, Any] = {"name": "lab", "registryScopes": scopes, "signatureVerification": {"level": level}}
    if level != "skip":
        statement.update(trustStores=["ca:lab"], trustedIdentities=["*"])
    path = pki.directory / "trustpolicy.json"
    path.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    return path


def notation_rule(pki: LabPki, scopes: list[str], level: str = "strict", keys: tuple[str, ...] = ()) -> ImageRule:
    signature = SignatureRule(trust_policy(pki, scopes, level), pki.directory / "truststore", keys)
    return ImageRule("ml-prod", ("*",), None, signature)


def notation_signature(pki: LabPki, digest: str) -> SignatureArtifact:
    payload = json.dumps({"targetArtifact": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "digest": digest, "size": 1234}}).encode()  # fmt: skip
    return SignatureArtifact("notation", OTHER, JWS_MEDIA_TYPE, notation_jws(pki.ca, payload), None, "tag-schema")


def test_a_signature_of_a_trusted_identity_passes_with_its_facts(pki: LabPki) -> None:
    io = FakePolicyIO([notation_signature(pki, DIGEST)])
    verdict = check_digest(notation_rule(pki, ["*"]), IMAGE, NAME, DIGEST, io, NOW)
    assert verdict.passed and verdict.refusal() == ""
    facts = verdict.as_record()["signature"]
    assert (facts["format"], facts["identity"], facts["verified"], facts["found"]) == (
        "notation",
        pki.ca.subject,
        True,
        1,
    )


def test_a_signature_of_another_digest_refuses_in_one_sentence(pki: LabPki) -> None:
    io = FakePolicyIO([notation_signature(pki, OTHER)])
    verdict = check_digest(notation_rule(pki, ["*"]), IMAGE, NAME, DIGEST, io, NOW)
    sentence = verdict.refusal()
    assert not verdict.passed
    assert sentence.startswith(f"Image policy 'ml-prod' refused {IMAGE} ({DIGEST}): its signature rule failed, ")
    assert OTHER in sentence and "\n" not in sentence, sentence
    error = EcrImagePolicyError(sentence, verdict=verdict)
    assert error.exit_code == 10 and error.verdict is verdict


def test_no_signature_at_all_names_the_formats_configured_and_what_to_do(pki: LabPki) -> None:
    key = pki.directory / "cosign.pub"
    key.write_bytes(public_pem(new_key()))
    verdict = check_digest(notation_rule(pki, ["*"], keys=(str(key),)), IMAGE, NAME, DIGEST, FakePolicyIO([]), NOW)
    outcome = verdict.outcome("signature")
    assert outcome is not None and not outcome.passed
    assert outcome.summary == f"no cosign or notation signature of it was found in {NAME.host}"
    assert outcome.fix.startswith(f"sign {DIGEST} with a trusted identity (cosign or notation)")


def test_either_format_that_verifies_is_enough(pki: LabPki) -> None:
    key = new_key()
    (pki.directory / "cosign.pub").write_bytes(public_pem(key))
    payload = cosign_payload(DIGEST, f"{NAME.host}/{NAME.repository}")
    cosigned = SignatureArtifact("cosign", OTHER, "", payload, cosign_sign(key, payload), "cosign-tag")
    io = FakePolicyIO([notation_signature(pki, OTHER), cosigned])  # the Notation one is for another digest
    rule = notation_rule(pki, ["*"], keys=(str(pki.directory / "cosign.pub"),))
    verdict = check_digest(rule, IMAGE, NAME, DIGEST, io, NOW)
    assert verdict.passed and verdict.as_record()["signature"]["format"] == "cosign"


def test_a_trust_policy_that_skips_the_scope_asks_the_registry_nothing(pki: LabPki) -> None:
    io = FakePolicyIO([])
    verdict = check_digest(notation_rule(pki, ["*"], level="skip"), IMAGE, NAME, DIGEST, io, NOW)
    assert verdict.passed and io.asked == []
    assert verdict.as_record()["signature"]["level"] == "skip"


def test_a_trust_policy_that_covers_another_repository_does_not_verify_this_one(pki: LabPki) -> None:
    rule = notation_rule(pki, [f"{NAME.host}/ml/other"])
    verdict = check_digest(rule, IMAGE, NAME, DIGEST, FakePolicyIO([notation_signature(pki, DIGEST)]), NOW)
    assert not verdict.passed
    assert f"no policy of the Notation trust policy covers {NAME.host}/ml/train" in verdict.refusal()


def test_the_scan_rule_comes_first_and_both_failures_are_named(pki: LabPki) -> None:
    report = ScanReport(DIGEST, "IN_PROGRESS", waited_seconds=60)
    rule = ImageRule("ml-prod", ("*",), ScanRule(pending_wait_seconds=60), notation_rule(pki, ["*"]).signature)
    verdict = check_digest(rule, IMAGE, NAME, DIGEST, FakePolicyIO([], report), NOW)
    assert [o.rule for o in verdict.outcomes] == ["scan", "signature"]
    sentence = verdict.refusal()
    assert "its scan rule failed" in sentence and "(the signature rule failed too)" in sentence, sentence


def test_a_verdict_expires_with_its_earliest_outcome() -> None:
    from airflow_ecr.trust.outcome import RuleOutcome

    verdict = Verdict(
        IMAGE, DIGEST, "x", (RuleOutcome("scan", True, "", expires_at=50.0), RuleOutcome("signature", True, ""))
    )
    assert verdict.expires_at == 50.0


def test_the_xcom_and_the_lineage_facet_carry_the_verdict(pki: LabPki) -> None:
    pytest.importorskip("airflow.providers.openlineage")  # the facet is the OpenLineage provider's
    from airflow_ecr.images.record import build_record
    from airflow_ecr.lineage import FACET_NAME, image_lineage

    verdict = check_digest(
        notation_rule(pki, ["*"]), IMAGE, NAME, DIGEST, FakePolicyIO([notation_signature(pki, DIGEST)]), NOW
    )
    record = build_record(IMAGE, "eu-west-1", True, DIGEST, None, None, policy=verdict.as_record())
    assert record.as_xcom()["policy"] == verdict.as_record()
    facet = image_lineage(record).run_facets[FACET_NAME]
    assert facet.policy["signature"]["identity"] == pki.ca.subject and facet.policy["passed"] is True
