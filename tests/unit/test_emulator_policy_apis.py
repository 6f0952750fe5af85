"""
The emulator's image policy APIs (issue 26) over real HTTP with real boto3 clients: ECR
``DescribeImageScanFindings`` (basic and enhanced shapes, pagination, pending scans, ECR's errors),
AWS Signer ``GetRevocationStatus`` (REST-JSON) and KMS ``GetPublicKey``/``Sign`` (JSON 1.1), all
set up through the admin client, and denied through the ``deny_actions`` switch.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount, EmulatorClient

ACCOUNT, REGION, OTHER_REGION = "111111111111", "eu-west-1", "us-east-1"
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64
PROFILE = "arn:aws:signer:eu-west-1:111111111111:/signing-profiles/lab/abcdef1234"
JOB = "arn:aws:signer:eu-west-1:111111111111:/signing-jobs/0123456789abcdef"


@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCOUNT, REGION), EmulatedAccount(ACCOUNT, OTHER_REGION)]) as emulator:
        yield emulator


@pytest.fixture
def admin(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorClient]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_KMS", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    client = EmulatorClient(emu.url, token=emu.admin_token)
    client.reset()
    yield client
    client.reset()
    client.clear_scans()
    client.clear_signer_revocations()
    client.clear_kms_keys()


def aws(emu: EcrEmulator, service: str, region: str = REGION, **config: Any) -> Any:
    """
    A plain boto3 client of ``service`` to the emulator, one attempt per call. AWS Signer's
    ``GetRevocationStatus`` is served on ``data-signer.<region>``: botocore prefixes the endpoint's
    host with ``data-`` unless told not to, which an endpoint on 127.0.0.1 needs.
    """
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=emu.url,
        aws_access_key_id="POLICYKEY",
        aws_secret_access_key="not-a-secret",
        config=Config(retries={"total_max_attempts": 1}, inject_host_prefix=False, **config),
    )


def error_code(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def basic(name: str, severity: str) -> dict[str, Any]:
    return {
        "name": name,
        "uri": f"https://security-tracker.debian.org/tracker/{name}",
        "severity": severity,
        "attributes": [{"key": "package_name", "value": "openssl"}, {"key": "package_version", "value": "3.0.11"}],
    }


def enhanced(vuln_id: str, severity: str, fix: str = "YES", exploit: str = "NO") -> dict[str, Any]:
    return {
        "awsAccountId": ACCOUNT,
        "description": f"{vuln_id} in openssl",
        "findingArn": f"arn:aws:inspector2:{REGION}:{ACCOUNT}:finding/{hashlib.md5(vuln_id.encode()).hexdigest()}",  # noqa: S324
        "firstObservedAt": 1_700_000_000,
        "lastObservedAt": 1_700_100_000,
        "packageVulnerabilityDetails": {
            "vulnerabilityId": vuln_id,
            "source": "NVD",
            "vulnerablePackages": [{"name": "openssl", "version": "3.0.11", "fixedInVersion": "3.0.13"}],
            "cvss": [{"baseScore": 9.8, "scoringVector": "CVSS:3.1/AV:N", "source": "NVD", "version": "3.1"}],
        },
        "score": 9.8,
        "severity": severity,
        "status": "ACTIVE",
        "title": f"{vuln_id} - openssl",
        "type": "PACKAGE_VULNERABILITY",
        "fixAvailable": fix,
        "exploitAvailable": exploit,
    }


# -- ECR DescribeImageScanFindings -----------------------------------------------------------------
def test_a_basic_scan_answers_in_ecrs_shape_and_is_recorded(emu: EcrEmulator, admin: EmulatorClient) -> None:
    admin.set_scan("team/app", DIGEST, findings=[basic("CVE-2024-0001", "CRITICAL"), basic("CVE-2024-0002", "LOW")])
    answer = aws(emu, "ecr").describe_image_scan_findings(repositoryName="team/app", imageId={"imageDigest": DIGEST})
    assert answer["imageScanStatus"] == {"status": "COMPLETE"}
    assert answer["imageId"] == {"imageDigest": DIGEST} and answer["registryId"] == ACCOUNT
    findings = answer["imageScanFindings"]
    assert findings["findingSeverityCounts"] == {"CRITICAL": 1, "LOW": 1}
    assert [f["name"] for f in findings["findings"]] == ["CVE-2024-0001", "CVE-2024-0002"]
    assert isinstance(findings["imageScanCompletedAt"], datetime)  # botocore parsed ECR's epoch seconds
    assert "enhancedFindings" not in findings and "nextToken" not in answer
    calls = [c for c in admin.calls() if c["target"].endswith("DescribeImageScanFindings")]
    assert [(c["outcome"], c["region"], c["registry_ids"]) for c in calls] == [("ok", REGION, [ACCOUNT])]


def test_an_enhanced_scan_pages_its_findings_with_next_token(emu: EcrEmulator, admin: EmulatorClient) -> None:
    ids = [f"CVE-2024-{n:04d}" for n in range(5)]
    admin.set_scan("team/app", DIGEST, "ACTIVE", enhanced_findings=[enhanced(i, "HIGH") for i in ids], tags=["v1"])
    ecr = aws(emu, "ecr")
    seen: list[str] = []
    pages = 0
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"nextToken": token} if token else {}
        page = ecr.describe_image_scan_findings(
            registryId=ACCOUNT, repositoryName="team/app", imageId={"imageTag": "v1"}, maxResults=2, **kwargs
        )
        pages += 1
        assert page["imageId"] == {"imageDigest": DIGEST, "imageTag": "v1"}
        assert page["imageScanFindings"]["findingSeverityCounts"] == {"HIGH": 5}  # every page counts them all
        found = page["imageScanFindings"]["enhancedFindings"]
        seen += [f["packageVulnerabilityDetails"]["vulnerabilityId"] for f in found]
        assert all(f["fixAvailable"] == "YES" and f["exploitAvailable"] == "NO" for f in found)
        token = page.get("nextToken")
        if not token:
            break
    assert (seen, pages) == (ids, 3)
    paginator = ecr.get_paginator("describe_image_scan_findings")
    pages_through_boto = list(
        paginator.paginate(repositoryName="team/app", imageId={"imageDigest": DIGEST}, PaginationConfig={"PageSize": 4})
    )
    assert sum(len(p["imageScanFindings"]["enhancedFindings"]) for p in pages_through_boto) == 5
    assert error_code(
        ecr.describe_image_scan_findings, repositoryName="team/app", imageId={"imageDigest": DIGEST}, nextToken="junk"
    ) == ("InvalidParameterException", 400)


def test_ecrs_errors_for_unknown_repository_image_and_scan(emu: EcrEmulator, admin: EmulatorClient) -> None:
    admin.set_scan("team/app", DIGEST)
    admin.set_scan("team/app", OTHER_DIGEST, None)  # pushed, never scanned
    ecr = aws(emu, "ecr")
    describe = ecr.describe_image_scan_findings
    assert error_code(describe, repositoryName="team/none", imageId={"imageDigest": DIGEST}) == (
        "RepositoryNotFoundException",
        400,
    )
    assert error_code(describe, repositoryName="team/app", imageId={"imageDigest": "sha256:" + "c" * 64}) == (
        "ImageNotFoundException",
        400,
    )
    assert error_code(describe, repositoryName="team/app", imageId={"imageDigest": OTHER_DIGEST}) == (
        "ScanNotFoundException",
        400,
    )
    # Scans are per region: the same repository in another region is another repository.
    other = aws(emu, "ecr", OTHER_REGION)
    code = error_code(other.describe_image_scan_findings, repositoryName="team/app", imageId={"imageDigest": DIGEST})
    assert code == ("RepositoryNotFoundException", 400)


def test_a_denied_action_answers_access_denied_naming_it(emu: EcrEmulator, admin: EmulatorClient) -> None:
    admin.set_scan("team/app", DIGEST)
    admin.faults(deny_actions=["DescribeImageScanFindings"])
    with pytest.raises(ClientError) as info:
        aws(emu, "ecr").describe_image_scan_findings(repositoryName="team/app", imageId={"imageDigest": DIGEST})
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "ecr:DescribeImageScanFindings" in info.value.response["Error"]["Message"]
    # Token calls are not affected.
    assert aws(emu, "ecr").get_authorization_token()["authorizationData"]


def test_a_pending_scan_finishes_after_its_answers_or_its_time(emu: EcrEmulator, admin: EmulatorClient) -> None:
    ecr = aws(emu, "ecr")

    def status(digest: str) -> str:
        answer = ecr.describe_image_scan_findings(repositoryName="team/app", imageId={"imageDigest": digest})
        assert ("imageScanFindings" in answer) == (answer["imageScanStatus"]["status"] == "COMPLETE")
        return str(answer["imageScanStatus"]["status"])

    admin.set_scan("team/app", DIGEST, findings=[basic("CVE-1", "LOW")], pending_answers=2, pending_status="PENDING")
    assert [status(DIGEST) for _ in range(3)] == ["PENDING", "PENDING", "COMPLETE"]
    admin.set_scan("team/app", OTHER_DIGEST, pending_seconds=0.4)
    assert status(OTHER_DIGEST) == "IN_PROGRESS"
    time.sleep(0.5)
    assert status(OTHER_DIGEST) == "COMPLETE"
    admin.set_scan("team/app", DIGEST, "IN_PROGRESS")  # one that stays pending
    assert status(DIGEST) == "IN_PROGRESS"


def test_bad_scan_records_are_refused_by_the_admin_api(admin: EmulatorClient) -> None:
    import urllib.error

    for kwargs in (
        {"status": "DONE"},
        {"findings": [basic("CVE-1", "LOW")], "enhanced_findings": [enhanced("CVE-2", "LOW")]},
        {"pending_seconds": -1},
    ):
        with pytest.raises(urllib.error.HTTPError) as info:
            admin.set_scan("team/app", DIGEST, **kwargs)
        assert info.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as info:
        admin.set_scan("team/app", DIGEST, account_id="999999999999")
    assert info.value.code == 404


# -- AWS Signer GetRevocationStatus ------------------------------------------------------------------
def revocation(emu: EcrEmulator, signed_at: datetime, hashes_: list[str]) -> list[str]:
    answer = aws(emu, "signer").get_revocation_status(
        signatureTimestamp=signed_at,
        platformId="Notation-OCI-SHA384-ECDSA",
        profileVersionArn=PROFILE,
        jobArn=JOB,
        certificateHashes=hashes_,
    )
    return list(answer["revokedEntities"])


def test_signer_answers_what_is_revoked(emu: EcrEmulator, admin: EmulatorClient) -> None:
    now = datetime.now(timezone.utc)
    assert revocation(emu, now, ["ab" * 48, "cd" * 48]) == []
    admin.revoke_signer(certificate_hash="cd" * 48)
    assert revocation(emu, now, ["ab" * 48, "cd" * 48]) == ["cd" * 48]
    admin.revoke_signer(job_arn=JOB)
    assert revocation(emu, now, ["ab" * 48]) == [JOB]
    # A profile version revoked from a time on: only signatures made then or later are revoked.
    admin.revoke_signer(profile_version_arn=PROFILE, effective_time=now.timestamp())
    earlier = datetime.fromtimestamp(now.timestamp() - 3600, timezone.utc)
    assert revocation(emu, earlier, ["ab" * 48]) == [JOB]
    assert revocation(emu, now, ["ab" * 48]) == [PROFILE, JOB]
    assert admin.calls()[-1]["target"] == "AWSSigner.GetRevocationStatus"
    assert admin.calls()[-1]["region"] == REGION
    admin.clear_signer_revocations()
    assert revocation(emu, now, ["cd" * 48]) == []


def test_signer_errors_come_back_as_rest_json_errors(emu: EcrEmulator, admin: EmulatorClient) -> None:
    admin.faults(deny_actions=["signer:GetRevocationStatus"])
    with pytest.raises(ClientError) as info:
        revocation(emu, datetime.now(timezone.utc), ["ab" * 48])
    error = info.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("AccessDeniedException", 403)
    assert "signer:GetRevocationStatus" in error["Error"]["Message"]
    admin.faults(deny_actions=[])
    # botocore checks the ARN's length too; skip its validation to see the emulator's answer.
    client = aws(emu, "signer", parameter_validation=False)
    assert error_code(
        client.get_revocation_status,
        signatureTimestamp=datetime.now(timezone.utc),
        platformId="p",
        profileVersionArn="arn:short",
        jobArn=JOB,
        certificateHashes=["ab"],
    ) == ("ValidationException", 400)


# -- KMS GetPublicKey and Sign ----------------------------------------------------------------------
def test_kms_answers_a_der_public_key_that_cryptography_loads(emu: EcrEmulator, admin: EmulatorClient) -> None:
    key = admin.add_kms_key(aliases=["alias/cosign"])
    kms = aws(emu, "kms")
    for key_id in (key["KeyId"], key["Arn"], "alias/cosign", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/cosign"):
        answer = kms.get_public_key(KeyId=key_id)
        assert answer["KeyId"] == key["Arn"]
        assert (answer["KeySpec"], answer["KeyUsage"], answer["SigningAlgorithms"]) == (
            "ECC_NIST_P256",
            "SIGN_VERIFY",
            ["ECDSA_SHA_256"],
        )
        public = serialization.load_der_public_key(answer["PublicKey"])
        assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert base64.b64decode(key["PublicKey"]) == answer["PublicKey"]
    assert [c["target"] for c in admin.calls()] == ["TrentService.GetPublicKey"] * 4


def test_kms_signs_raw_messages_and_digests_verifiably(emu: EcrEmulator, admin: EmulatorClient) -> None:
    kms = aws(emu, "kms")
    ec_key = admin.add_kms_key(key_spec="ECC_NIST_P384")
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=ec_key["KeyId"])["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    signed = kms.sign(KeyId=ec_key["KeyId"], Message=b"payload", SigningAlgorithm="ECDSA_SHA_384")
    public.verify(signed["Signature"], b"payload", ec.ECDSA(hashes.SHA384()))
    digest = hashlib.sha384(b"payload").digest()
    signed = kms.sign(KeyId=ec_key["Arn"], Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_384")
    public.verify(signed["Signature"], digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))

    own = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = own.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    rsa_key = admin.add_kms_key(key_id="rsa-key", private_key_pem=pem.decode())
    assert rsa_key["KeySpec"] == "RSA_2048"
    signed = kms.sign(KeyId="rsa-key", Message=b"payload", SigningAlgorithm="RSASSA_PSS_SHA_256")
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    own.public_key().verify(signed["Signature"], b"payload", pss, hashes.SHA256())
    with pytest.raises(InvalidSignature):
        own.public_key().verify(signed["Signature"], b"tampered", pss, hashes.SHA256())


def test_kms_errors(emu: EcrEmulator, admin: EmulatorClient) -> None:
    key = admin.add_kms_key()
    kms = aws(emu, "kms")
    assert error_code(kms.get_public_key, KeyId="alias/none") == ("NotFoundException", 400)
    assert error_code(kms.get_public_key, KeyId="no-such-key") == ("NotFoundException", 400)
    # A key lives in its region: the same id asked in another region is not found.
    assert error_code(aws(emu, "kms", OTHER_REGION).get_public_key, KeyId=key["KeyId"]) == ("NotFoundException", 400)
    assert error_code(kms.sign, KeyId=key["KeyId"], Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256") == (
        "InvalidKeyUsageException",
        400,
    )
    assert error_code(
        kms.sign, KeyId=key["KeyId"], Message=b"short", MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
    ) == ("ValidationException", 400)
    admin.faults(deny_actions=["kms:GetPublicKey"])
    code, status = error_code(kms.get_public_key, KeyId=key["KeyId"])
    assert (code, status) == ("AccessDeniedException", 400)


def test_clients_reach_every_service_through_the_per_service_endpoint_variables(
    emu: EcrEmulator, admin: EmulatorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for service in ("ECR", "KMS", "SIGNER"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", emu.url)
    # Signer's data-plane host prefix (``data-``) off, as for any custom endpoint of it.
    monkeypatch.setenv("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
    session = boto3.session.Session(aws_access_key_id="K", aws_secret_access_key="S", region_name=REGION)
    key = admin.add_kms_key()
    admin.set_scan("team/app", DIGEST)
    assert session.client("kms").get_public_key(KeyId=key["KeyId"])["KeyId"] == key["Arn"]
    ecr = session.client("ecr")
    assert ecr.describe_image_scan_findings(repositoryName="team/app", imageId={"imageDigest": DIGEST})
    assert (
        session.client("signer").get_revocation_status(
            signatureTimestamp=datetime.now(timezone.utc),
            platformId="Notation-OCI-SHA384-ECDSA",
            profileVersionArn=PROFILE,
            jobArn=JOB,
            certificateHashes=["ab"],
        )["revokedEntities"]
        == []
    )
