"""cosign signatures (:mod:`airflow_ecr.trust.cosign`): real signatures made by cosign and skopeo
(containers/image's fixtures, ``tests/data/cosign``), then keys of every type cosign signs with."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.trust.cosign import CosignKey, load_cosign_key, parse_kms_uri, verify_cosign
from airflow_ecr_lab.signing import cosign_payload, cosign_sign, new_key, public_pem

DATA = Path(__file__).resolve().parents[1] / "data" / "cosign"
# The sha256 of cosign-valid_manifest.json: the image those signatures sign.
SIGNED = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
OTHER = "sha256:" + "b" * 64


def fixture(name: str) -> tuple[bytes, str]:
    """(payload, base64 signature) of one of containers/image's signature files."""
    document = json.loads((DATA / name).read_bytes().split(b"\n", 1)[1])  # after "\0sigstore-json\n"
    return base64.b64decode(document["payload"]), document["annotations"]["dev.cosignproject.cosign/signature"]


@pytest.fixture
def trusted() -> CosignKey:
    return load_cosign_key(str(DATA / "cosign.pub"))


# -- the reference implementations' signatures ----------------------------------------------------
def test_the_vendored_manifest_is_the_signed_digest() -> None:
    import hashlib

    assert "sha256:" + hashlib.sha256((DATA / "cosign-valid_manifest.json").read_bytes()).hexdigest() == SIGNED


@pytest.mark.parametrize("name", ["cosign-valid_signature-1", "cosign-valid-2_signature-2"])
def test_a_cosign_signature_verifies_with_its_key(trusted: CosignKey, name: str) -> None:
    payload, signature = fixture(name)
    result = verify_cosign(payload, signature, SIGNED, [trusted])
    assert result.verified, result.reason
    assert result.format == "cosign"
    assert result.identity == str(DATA / "cosign.pub")
    assert result.signing_time is None  # cosign writes no time


def test_a_skopeo_signature_carries_its_signing_time(trusted: CosignKey) -> None:
    payload, signature = fixture("cosign-valid-with-tag_signature-1")
    result = verify_cosign(payload, signature, SIGNED, [trusted])
    assert result.verified, result.reason
    assert result.signing_time == "2022-07-08T16:10:09Z"


def test_the_wrong_key_does_not_verify() -> None:
    payload, signature = fixture("cosign-valid_signature-1")
    result = verify_cosign(payload, signature, SIGNED, [load_cosign_key(str(DATA / "cosign2.pub"))])
    assert not result.verified
    assert result.identity is None
    assert "no trusted key verifies it" in result.reason
    assert "cosign2.pub" in result.reason


def test_a_signature_by_an_unknown_key_does_not_verify(trusted: CosignKey) -> None:
    payload, signature = fixture("unknown-cosign-key.signature")
    assert not verify_cosign(payload, signature, SIGNED, [trusted]).verified


def test_the_first_key_that_verifies_is_the_identity(trusted: CosignKey) -> None:
    payload, signature = fixture("cosign-valid_signature-1")
    wrong = load_cosign_key(str(DATA / "cosign2.pub"))
    assert verify_cosign(payload, signature, SIGNED, [wrong, trusted]).identity == trusted.name


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.replace(b"634a8f35", b"634a8f36"),  # the signed digest changed
        lambda p: p.replace(b"cosign-signed-single-sample", b"cosign-signed-single-sampl3"),
        lambda p: p + b"\n",  # even whitespace: the signature is over the exact bytes
    ],
)
def test_a_tampered_payload_does_not_verify(trusted: CosignKey, tamper) -> None:
    payload, signature = fixture("cosign-valid_signature-1")
    result = verify_cosign(tamper(payload), signature, SIGNED, [trusted])
    assert not result.verified


def test_a_valid_signature_of_another_digest_is_refused(trusted: CosignKey) -> None:
    payload, signature = fixture("cosign-valid_signature-1")
    result = verify_cosign(payload, signature, OTHER, [trusted])
    assert not result.verified
    assert result.identity == trusted.name  # the key did sign: it signed something else
    assert f"it signed {SIGNED}, not {OTHER} which would run" in result.reason


def test_a_signed_attachment_that_is_not_a_payload_is_refused(trusted: CosignKey) -> None:
    payload, signature = fixture("cosign-other-attachment_signature-1")
    assert not verify_cosign(payload, signature, SIGNED, [trusted]).verified


def test_the_reference_is_checked_only_when_asked(trusted: CosignKey) -> None:
    payload, signature = fixture("cosign-valid_signature-1")
    here = "192.168.64.2:5000/cosign-signed-single-sample"
    assert verify_cosign(payload, signature, SIGNED, [trusted], f"{here}:v1@{SIGNED}").verified
    elsewhere = verify_cosign(payload, signature, SIGNED, [trusted], "192.168.64.2:5000/other:v1")
    assert not elsewhere.verified
    assert "not 192.168.64.2:5000/other:v1" in elsewhere.reason


def test_a_signature_that_is_not_base64_is_refused(trusted: CosignKey) -> None:
    payload, _ = fixture("cosign-valid_signature-1")
    result = verify_cosign(payload, "not base64!", SIGNED, [trusted])
    assert not result.verified
    assert "not base64" in result.reason


def test_no_keys_verifies_nothing() -> None:
    payload, signature = fixture("cosign-valid_signature-1")
    assert not verify_cosign(payload, signature, SIGNED, []).verified


# -- every key type cosign signs with ------------------------------------------------------------
@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "ed25519"])
def test_own_keys_of_each_type(tmp_path: Path, kind: str) -> None:
    private = new_key(kind)
    (tmp_path / "cosign.pub").write_bytes(public_pem(private))
    key = load_cosign_key(str(tmp_path / "cosign.pub"))
    payload = cosign_payload(OTHER, "registry.example/app")
    assert verify_cosign(payload, cosign_sign(private, payload), OTHER, [key]).verified
    assert not verify_cosign(payload, cosign_sign(new_key(kind), payload), OTHER, [key]).verified


def test_rsa_pss_and_sha384_signatures_verify(tmp_path: Path) -> None:
    """What a KMS key signs with (RSASSA_PSS_SHA_256, ECDSA_SHA_384) rather than cosign's defaults."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    payload = cosign_payload(OTHER, "registry.example/app")
    rsa_key, ec_key = new_key("rsa-2048"), new_key("ec-p384")
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signatures = [
        (rsa_key, rsa_key.sign(payload, pss, hashes.SHA256())),
        (ec_key, ec_key.sign(payload, ec.ECDSA(hashes.SHA384()))),
    ]
    for private, signature in signatures:
        key = CosignKey("k", private.public_key())
        assert verify_cosign(payload, base64.b64encode(signature).decode(), OTHER, [key]).verified


def test_the_payload_type_must_be_cosigns(tmp_path: Path) -> None:
    private = new_key()
    document = json.loads(cosign_payload(OTHER, "registry.example/app"))
    document["critical"]["type"] = "atomic container signature"
    payload = json.dumps(document).encode()
    result = verify_cosign(payload, cosign_sign(private, payload), OTHER, [CosignKey("k", private.public_key())])
    assert not result.verified
    assert "atomic container signature" in result.reason


# -- keys: files and AWS KMS ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "key_id", "endpoint", "region"),
    [
        ("awskms:///1234abcd-12ab-34cd-56ef-1234567890ab", "1234abcd-12ab-34cd-56ef-1234567890ab", "", None),
        (
            "awskms:///arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "",
            "eu-west-1",
        ),
        ("awskms:///alias/signing", "alias/signing", "", None),
        (
            "awskms://localhost:4566/arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias",
            "arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias",
            "localhost:4566",
            "us-east-2",
        ),
    ],
)
def test_kms_uris_as_cosign_writes_them(uri: str, key_id: str, endpoint: str, region: str | None) -> None:
    reference = parse_kms_uri(uri)
    assert (reference.key_id, reference.endpoint, reference.region) == (key_id, endpoint, region)


@pytest.mark.parametrize(
    "uri",
    ["awskms://alias/signing", "awskms:///not-a-key", "awskms:///arn:aws:kms:eu-west-1:1111:key/x", "awskms:///"],
)
def test_bad_kms_uris_are_configuration_errors(uri: str) -> None:
    with pytest.raises(EcrConfigurationError, match="awskms:///"):
        load_cosign_key(uri, lambda key_id: b"")


def test_a_kms_key_verifies_through_get_public_key() -> None:
    private = new_key()
    asked: list[str] = []

    def fake_kms_public_key(key_id: str) -> bytes:
        """A fake of boto3's kms.get_public_key(KeyId=...)["PublicKey"]."""
        asked.append(key_id)
        return private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    uri = "awskms:///alias/cosign"
    key = load_cosign_key(uri, fake_kms_public_key)
    assert asked == ["alias/cosign"]
    payload = cosign_payload(OTHER, "registry.example/app")
    result = verify_cosign(payload, cosign_sign(private, payload), OTHER, [key])
    assert result.verified
    assert result.identity == uri


def test_a_kms_key_without_a_client_or_with_junk_is_a_configuration_error() -> None:
    with pytest.raises(EcrConfigurationError, match=r"kms:GetPublicKey"):
        load_cosign_key("awskms:///alias/cosign", None)
    with pytest.raises(EcrConfigurationError, match="asymmetric SIGN_VERIFY"):
        load_cosign_key("awskms:///alias/cosign", lambda key_id: b"junk")


def test_bad_key_files_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(EcrConfigurationError, match=r"cannot be read \(No such file"):
        load_cosign_key(str(tmp_path / "missing.pub"))
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(EcrConfigurationError, match="not a PEM public key"):
        load_cosign_key(str(tmp_path / "junk.pub"))
    with pytest.raises(EcrConfigurationError, match="uses a KMS this provider does not read"):
        load_cosign_key("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k")


def test_weak_keys_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the weak key under test)
    (tmp_path / "weak.pub").write_bytes(public_pem(weak))
    with pytest.raises(EcrConfigurationError, match="2048 bits or more"):
        load_cosign_key(str(tmp_path / "weak.pub"))
