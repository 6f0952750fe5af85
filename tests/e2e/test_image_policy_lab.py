"""Run only what you trust (issue 26) against the lab: the image policy checked before a task starts.

Every test runs a real ``EcrDockerOperator`` in this process against the lab's real engine and
registry and the emulator's ``DescribeImageScanFindings``, ``GetRevocationStatus`` and
``GetPublicKey`` over HTTP (real boto3). Signatures are made by the lab's signer and pushed to the
real registry (which has no referrers API: they are found through the OCI tag schema). A refusal
must come before any container exists and before the image is pulled.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from airflow_ecr import process_state
from airflow_ecr.exceptions import EcrImagePolicyError
from airflow_ecr.images.record import XCOM_KEY
from airflow_ecr.operators.docker import EcrDockerOperator, EcrDockerSwarmOperator
from airflow_ecr.trust.envelopes import AWS_PROFILE_VERSION, AWS_SIGNER_PLUGIN, AWS_SIGNING_JOB, JWS_MEDIA_TYPE
from airflow_ecr_lab.repository import push_marker_image, registry_requests
from airflow_ecr_lab.signing import (
    LabPki,
    LabRegistry,
    cosign_payload,
    cosign_sign,
    issue_leaf,
    make_pki,
    make_root,
    new_key,
    notation_jws,
    notation_payload,
)
from helpers.task_instance import RecordingTI

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

CONN = "aws_lab"  # the `aws` fixture (tests/conftest.py)
PROFILE = "arn:aws:signer:eu-west-1:111111111111:/signing-profiles/mlRelease"
OTHER_PROFILE = "arn:aws:signer:eu-west-1:111111111111:/signing-profiles/someoneElse"
CLEAN: dict[str, Any] = {"status": "COMPLETE", "findings": []}


@pytest.fixture
def image(lab) -> tuple[str, str, str]:
    """A fresh image (by tag) in the first account, its repository and its digest."""
    repository = f"app/policy-{uuid.uuid4().hex[:8]}"
    digest = push_marker_image(lab.dir, lab.account()["account_id"], f"{repository}:1", "trusted")
    return f"{lab.account()['host']}/{repository}:1", repository, digest


@pytest.fixture
def pki(tmp_path: Path) -> LabPki:
    return make_pki(tmp_path / "notation")


def write_policy(tmp_path: Path, pki: LabPki, monkeypatch, statement: dict[str, Any], **rule: Any) -> Path:
    """A Notation trust policy with ``statement`` and an image policy naming it, set as ``[ecr] image_policy``."""
    trust_policy = pki.directory / "trustpolicy.json"
    trust_policy.write_text(
        json.dumps({"version": "1.0", "trustPolicies": [{"name": "lab", "registryScopes": ["*"], **statement}]})
    )
    signature = {"notation": {"trustPolicy": str(trust_policy), "trustStore": str(pki.directory / "truststore")}}
    policy = {"version": "1", "rules": [{"name": "lab-prod", "scopes": ["*"], "signature": signature, **rule}]}
    path = tmp_path / "image-policy.json"
    path.write_text(json.dumps(policy))
    monkeypatch.setenv("AIRFLOW__ECR__IMAGE_POLICY", str(path))
    return path


CA_STATEMENT = {"signatureVerification": {"level": "strict"}, "trustStores": ["ca:lab"], "trustedIdentities": ["*"]}


def signer_statement(profile: str) -> dict[str, Any]:
    """A trust policy statement trusting one AWS Signer signing profile (and every version of it)."""
    return {
        "signatureVerification": {"level": "strict"},
        "trustStores": ["signingAuthority:lab"],
        "trustedIdentities": [profile],
    }


def sign(lab, repository: str, digest: str, signer: Any, **kwargs: Any) -> bytes:
    registry = LabRegistry.of(lab.dir)
    subject = registry.descriptor(repository, digest)
    envelope = notation_jws(signer, notation_payload(digest, subject["size"], subject["mediaType"]), **kwargs)
    registry.push_notation(repository, digest, envelope, JWS_MEDIA_TYPE)
    return envelope


def aws_signer(profile: str, job: str = "job-1") -> dict[str, Any]:
    """What AWS Signer's envelopes carry: its plugin, the signing profile version and the job."""
    return {
        "signing_scheme": "notary.x509.signingAuthority",
        "extra_critical": {
            "io.cncf.notary.verificationPlugin": AWS_SIGNER_PLUGIN,
            AWS_PROFILE_VERSION: f"{profile}/v1",
            AWS_SIGNING_JOB: f"arn:aws:signer:eu-west-1:111111111111:/signing-jobs/{job}",
        },
    }


class Engine:
    """The lab engine's containers and images: proof that a refused task started nothing."""

    def __init__(self, lab) -> None:
        self.client = docker.APIClient(base_url=lab.docker_host)

    def containers(self) -> int:
        return len(self.client.containers(all=True))

    def has(self, image: str) -> bool:
        try:
            self.client.inspect_image(image)
        except docker.errors.NotFound:
            return False
        return True

    def forget(self, image: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.client.remove_image(image, force=True)


def run(lab, image: str, **kwargs: Any) -> dict[str, Any]:
    """Execute an EcrDockerOperator as a new task process would; returns its XComs."""
    process_state.reset()
    ti = RecordingTI()
    op = EcrDockerOperator(
        task_id=f"t{uuid.uuid4().hex[:6]}", image=image, aws_conn_id=CONN, docker_url=lab.docker_host,
        command=["cat", "/marker"], network_mode="none", auto_remove="success", **kwargs,
    )  # fmt: skip
    op.execute({"ti": ti})
    return ti.xcom


def refused(lab, image: str, digest: str, **kwargs: Any) -> str:
    """Run ``image`` expecting the policy to refuse it before anything starts; returns the sentence."""
    engine = Engine(lab)
    engine.forget(image)
    before = engine.containers()
    with pytest.raises(EcrImagePolicyError) as caught:
        run(lab, image, **kwargs)
    assert engine.containers() == before, "a container was created for a refused image"
    assert not engine.has(image), "the refused image was pulled"
    sentence = str(caught.value)
    assert image in sentence and digest in sentence and "\n" not in sentence, sentence
    return sentence


def calls(emulator, action: str) -> int:
    return sum(1 for call in emulator.calls() if call.get("action", call.get("target", "")).endswith(action))


# -- runs ----------------------------------------------------------------------------------------
def test_a_signed_clean_image_runs_by_its_digest_and_a_warm_task_asks_nothing(
    lab, aws, image, pki, tmp_path, monkeypatch
):
    name, repository, digest = image
    aws.set_scan(repository, digest, **CLEAN)
    sign(lab, repository, digest, pki.ca)
    write_policy(tmp_path, pki, monkeypatch, CA_STATEMENT, scan={"failAt": "HIGH"})
    Engine(lab).forget(name)

    xcom = run(lab, name)[XCOM_KEY]
    assert xcom["digest"] == digest and xcom["pinned"], xcom  # pulled and ran the digest checked
    policy = xcom["policy"]
    assert policy["passed"] and not policy["cached"] and policy["scope"] == "lab-prod"
    assert policy["scan"]["status"] == "COMPLETE" and policy["scan"]["passed"]
    assert policy["signature"]["format"] == "notation" and policy["signature"]["identity"] == pki.ca.subject
    assert policy["signature"]["signing_time"]

    # A new task process on this host: the cached verdict, no scan call and no signature read.
    scans_before = calls(aws, "DescribeImageScanFindings")
    requests_before = len(registry_requests(lab.dir, lab.account()["account_id"]))
    xcom = run(lab, name)[XCOM_KEY]
    assert xcom["policy"]["cached"] and xcom["policy"]["passed"]
    assert calls(aws, "DescribeImageScanFindings") == scans_before
    served = registry_requests(lab.dir, lab.account()["account_id"])[requests_before:]
    assert not [r for r in served if "sha256-" in r.path or "/referrers/" in r.path], served


def test_a_cosign_signature_with_a_kms_key_lets_the_image_run(lab, aws, image, tmp_path, monkeypatch):
    name, repository, digest = image
    from cryptography.hazmat.primitives import serialization

    key = new_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    created = aws.add_kms_key(private_key_pem=pem)
    payload = cosign_payload(digest, f"{lab.account()['host']}/{repository}")
    LabRegistry.of(lab.dir).push_cosign_tag(repository, digest, payload, cosign_sign(key, payload))
    policy = {"version": "1", "rules": [{"name": "cosign", "scopes": ["*"],
              "signature": {"cosign": {"keys": [f"awskms:///{created['Arn']}"]}}}]}  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps(policy))
    monkeypatch.setenv("AIRFLOW__ECR__IMAGE_POLICY", str(tmp_path / "p.json"))

    xcom = run(lab, name)[XCOM_KEY]
    assert xcom["policy"]["signature"]["format"] == "cosign" and xcom["policy"]["signature"]["verified"]
    assert calls(aws, "GetPublicKey") >= 1


# -- refusals before anything starts ---------------------------------------------------------------
def test_an_unsigned_image_is_refused(lab, aws, image, pki, tmp_path, monkeypatch):
    name, _, digest = image
    write_policy(tmp_path, pki, monkeypatch, CA_STATEMENT)
    sentence = refused(lab, name, digest)
    assert "signature rule failed" in sentence and "no notation signature" in sentence, sentence


def test_a_signature_by_an_untrusted_identity_is_refused(lab, aws, image, pki, tmp_path, monkeypatch):
    name, repository, digest = image
    sign(lab, repository, digest, pki.authority, **aws_signer(OTHER_PROFILE))
    write_policy(tmp_path, pki, monkeypatch, signer_statement(PROFILE))
    sentence = refused(lab, name, digest)
    assert "signature rule failed" in sentence and "none verified" in sentence, sentence


def test_a_signature_from_an_unknown_ca_is_refused(lab, aws, image, pki, tmp_path, monkeypatch):
    name, repository, digest = image
    stranger = issue_leaf(make_root("someone else's root"), "someone else")
    sign(lab, repository, digest, stranger)
    write_policy(tmp_path, pki, monkeypatch, CA_STATEMENT)
    assert "none verified" in refused(lab, name, digest)


def test_a_tampered_signature_is_refused(lab, aws, image, pki, tmp_path, monkeypatch):
    name, repository, digest = image
    registry = LabRegistry.of(lab.dir)
    subject = registry.descriptor(repository, digest)
    envelope = json.loads(notation_jws(pki.ca, notation_payload(digest, subject["size"], subject["mediaType"])))
    claims = json.loads(base64.urlsafe_b64decode(envelope["payload"] + "=="))
    claims["targetArtifact"]["size"] += 1  # one field changed after signing
    envelope["payload"] = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    registry.push_notation(repository, digest, json.dumps(envelope).encode(), JWS_MEDIA_TYPE)
    write_policy(tmp_path, pki, monkeypatch, CA_STATEMENT)
    sentence = refused(lab, name, digest)
    assert "does not verify" in sentence, sentence


def test_a_revoked_aws_signer_signature_is_refused_and_a_live_one_runs(lab, aws, image, pki, tmp_path, monkeypatch):
    name, repository, digest = image
    profile = f"{PROFILE}-{uuid.uuid4().hex[:8]}"  # revocations outlive a test in the lab's emulator
    sign(lab, repository, digest, pki.authority, **aws_signer(profile))
    write_policy(tmp_path, pki, monkeypatch, signer_statement(profile))
    assert run(lab, name)[XCOM_KEY]["policy"]["signature"]["verified"]
    assert calls(aws, "GetRevocationStatus") >= 1

    aws.revoke_signer(profile_version_arn=f"{profile}/v1")
    # A new host (an empty cache): revocation is asked again, and refuses.
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "another-host"))
    sentence = refused(lab, name, digest)
    assert "revoked" in sentence, sentence


def test_a_critical_finding_is_refused(lab, aws, image, pki, tmp_path, monkeypatch):
    name, repository, digest = image
    sign(lab, repository, digest, pki.ca)
    finding = {"name": "CVE-2026-0001", "severity": "CRITICAL", "uri": "https://example.com/CVE-2026-0001"}
    aws.set_scan(repository, digest, "COMPLETE", findings=[finding])
    write_policy(tmp_path, pki, monkeypatch, CA_STATEMENT, scan={"failAt": "HIGH"})
    sentence = refused(lab, name, digest)
    assert "scan rule failed" in sentence and "CVE-2026-0001" in sentence, sentence


def test_a_scan_still_pending_after_its_wait_is_refused(lab, aws, image, pki, tmp_path, monkeypatch):
    name, repository, digest = image
    sign(lab, repository, digest, pki.ca)
    aws.set_scan(repository, digest, "COMPLETE", findings=[], pending_answers=1000)
    write_policy(tmp_path, pki, monkeypatch, CA_STATEMENT, scan={"failAt": "HIGH", "pendingWaitSeconds": 1})
    sentence = refused(lab, name, digest)
    assert "scan rule failed" in sentence and "IN_PROGRESS" in sentence, sentence


def test_a_dag_cannot_loosen_the_deployment_policy(lab, aws, image, pki, tmp_path, monkeypatch):
    name = image[0]
    write_policy(tmp_path, pki, monkeypatch, CA_STATEMENT, scan={"failAt": "HIGH"})
    engine = Engine(lab)
    before = engine.containers()
    with pytest.raises(Exception, match="may only tighten"):
        run(lab, name, image_policy={"scan": {"failAt": "CRITICAL"}})
    assert engine.containers() == before


def test_a_swarm_service_is_refused_before_it_exists(lab, aws, image, pki, tmp_path, monkeypatch):
    name, _, digest = image
    write_policy(tmp_path, pki, monkeypatch, CA_STATEMENT)
    client = docker.APIClient(base_url=lab.docker_host)
    services = len(client.services())
    service = EcrDockerSwarmOperator(
        task_id=f"s{uuid.uuid4().hex[:6]}", image=name, aws_conn_id=CONN, docker_url=lab.docker_host,
        command=["cat", "/marker"],
    )  # fmt: skip
    process_state.reset()
    with pytest.raises(EcrImagePolicyError, match=f"refused {name} \\({digest}\\)"):
        service.execute({"ti": RecordingTI()})
    assert len(client.services()) == services


def test_doctor_shows_the_policy_rule_by_rule(lab, aws, image, pki, tmp_path, monkeypatch):
    """An image with a clean scan and no signature: the scan rule passes, the signature rule fails (exit 10)."""
    from airflow_ecr import doctor
    from airflow_ecr.exit_codes import EXIT_POLICY

    name, repository, digest = image
    aws.set_scan(repository, digest, **CLEAN)
    write_policy(tmp_path, pki, monkeypatch, CA_STATEMENT, scan={"failAt": "HIGH"})
    process_state.reset()
    state = doctor.DoctorState(image=name, aws_conn_id=CONN, docker_url=lab.docker_host)
    results = {r.name: r for r in doctor.run_checks(state, doctor.checks_for(state))}
    scan, signature = results["policy_scan"], results["policy_signature"]
    assert (scan.status, scan.details["digest"], scan.details["status"]) == ("ok", digest, "COMPLETE"), scan
    assert (signature.status, signature.exit_code) == ("fail", EXIT_POLICY), signature
    assert "no notation signature" in signature.summary and signature.fix, signature
