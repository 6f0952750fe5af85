"""
cosign signatures: a "simple signing" payload signed with a public key or an AWS KMS key. Pure.

cosign signs a small JSON document, the simple-signing payload
(``application/vnd.dev.cosign.simplesigning.v1+json``)::

    {"critical": {"identity": {"docker-reference": "<repository>"},
                  "image": {"docker-manifest-digest": "sha256:..."},
                  "type": "cosign container image signature"},
     "optional": {...}}

and stores it as a layer whose ``dev.cosignproject.cosign/signature`` annotation holds the base64
signature over the payload's exact bytes. A signature proves something about the digest that runs
only when it verifies with a trusted key *and* the payload names that digest: a valid signature of
another image, replayed, must fail.

Keys are those cosign accepts with ``--key``: a PEM public key file, or an AWS KMS key
(``awskms://[ENDPOINT]/<key id | key ARN | alias/NAME | alias ARN>``, the grammar of sigstore's
``pkg/signature/kms/aws``) whose public key the caller reads with ``kms:GetPublicKey``. Every
primitive is the ``cryptography`` package's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.trust.outcome import SignatureResult

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
# The artifactType of cosign's referrers form (`cosign sign --registry-referrers-mode oci-1-1`).
ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
KMS_SCHEME = "awskms://"
FORMAT = "cosign"

# sigstore pkg/signature/kms/aws/client.go: key id, key ARN, alias name, alias ARN; an optional endpoint.
_UUID = r"m?r?k?-?[A-Fa-f0-9]{8}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{12}"
_ARN = r"arn:(?:aws|aws-us-gov|aws-cn):kms:(?P<region>[a-z0-9-]+):\d{12}:"
_KMS_URIS = tuple(
    re.compile(r"^awskms://(?P<endpoint>[^/]*)/(?P<key>" + key + r")$")
    for key in (_UUID, _ARN + "key/" + _UUID, r"alias/.+", _ARN + r"alias/.+")
)
# Other KMS schemes cosign knows: named so that the error says why, not just "no such file".
_OTHER_KMS = ("gcpkms://", "azurekms://", "hashivault://", "k8s://", "pkcs11:")


@dataclass(frozen=True)
class CosignKey:
    """
    A public key a cosign rule trusts.

    :param name: how the policy names it (a PEM path or an ``awskms://`` URI): the signer identity.
    :param public_key: the ``cryptography`` public key (ECDSA, RSA or Ed25519).
    """

    name: str
    public_key: Any


@dataclass(frozen=True)
class AwsKmsKey:
    """
    An ``awskms://`` key reference, parsed.

    :param uri: the reference as written.
    :param key_id: what ``kms:GetPublicKey`` takes as ``KeyId`` (key id, key ARN, ``alias/NAME`` or alias ARN).
    :param endpoint: the KMS endpoint the URI names (``host:port``), or empty for the default.
    :param region: the region an ARN names, or None.
    """

    uri: str
    key_id: str
    endpoint: str = ""
    region: str | None = None


def parse_kms_uri(uri: str) -> AwsKmsKey:
    """
    The parts of cosign's ``awskms://`` key reference.

    :param uri: e.g. ``awskms:///arn:aws:kms:eu-west-1:111111111111:key/<uuid>`` or ``awskms:///alias/signing``.
    :raises EcrConfigurationError: it is not one of the four forms cosign accepts.
    """
    for pattern in _KMS_URIS:
        match = pattern.fullmatch(uri)
        if match:
            return AwsKmsKey(uri, match["key"], match["endpoint"], match.groupdict().get("region"))
    raise EcrConfigurationError(
        f"cosign key {uri!r} is not an AWS KMS key reference: write awskms:///<key id, key ARN, alias/NAME "
        "or alias ARN> (optionally awskms://ENDPOINT/...), as cosign does."
    )


def load_cosign_key(spec: str, kms_public_key: Callable[[str], bytes] | None = None) -> CosignKey:
    """
    The key a cosign rule names, as cosign's ``--key`` takes it.

    :param spec: a PEM public key file, or an ``awskms://`` URI.
    :param kms_public_key: for a KMS key: ``KeyId`` -> the DER SubjectPublicKeyInfo (``kms:GetPublicKey``'s
        ``PublicKey``); the caller owns the AWS client, its region and endpoint (see :func:`parse_kms_uri`).
    :raises EcrConfigurationError: no such file, not a public key, an unsupported key, a bad URI.
    """
    from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

    if spec.startswith(KMS_SCHEME):
        reference = parse_kms_uri(spec)
        if kms_public_key is None:
            raise EcrConfigurationError(
                f"cosign key {spec} is an AWS KMS key but no KMS client was given to read it (kms:GetPublicKey)."
            )
        der = kms_public_key(reference.key_id)
        try:
            key = load_der_public_key(der)
        except ValueError:
            raise EcrConfigurationError(
                f"AWS KMS key {spec} did not answer a public key: use an asymmetric SIGN_VERIFY key."
            ) from None
        return CosignKey(spec, _supported(key, spec))
    if spec.startswith(_OTHER_KMS):
        raise EcrConfigurationError(
            f"cosign key {spec} uses a KMS this provider does not read: use a PEM public key file or awskms://."
        )
    try:
        data = Path(spec).read_bytes()
    except OSError as err:
        raise EcrConfigurationError(
            f"cosign public key {spec} cannot be read ({err.strerror or type(err).__name__}): "
            "give the path of the PEM file `cosign generate-key-pair` wrote (cosign.pub)."
        ) from None
    try:
        key = load_pem_public_key(data)
    except ValueError:
        raise EcrConfigurationError(
            f"cosign public key {spec} is not a PEM public key (-----BEGIN PUBLIC KEY-----): "
            "give cosign.pub, not the private key or a certificate."
        ) from None
    return CosignKey(spec, _supported(key, spec))


def _supported(key: Any, spec: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1", "secp521r1"):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise EcrConfigurationError(
        f"cosign key {spec} is a key cosign does not sign with: use ECDSA P-256/P-384/P-521, RSA of "
        "2048 bits or more, or Ed25519."
    )


def verify_cosign(
    payload: bytes,
    signature_b64: str,
    artifact_digest: str,
    keys: Sequence[CosignKey],
    artifact_reference: str | None = None,
) -> SignatureResult:
    """
    Whether a cosign signature proves that a trusted key signed ``artifact_digest``.

    :param payload: the simple-signing payload's exact bytes (the signature layer's blob).
    :param signature_b64: the layer's ``dev.cosignproject.cosign/signature`` annotation.
    :param artifact_digest: the digest that will run.
    :param keys: the trusted keys; the first that verifies is the signer identity.
    :param artifact_reference: if given, the image (``host/repository[:tag][@digest]``) whose repository
        the payload's ``docker-reference`` must name; cosign itself does not check it.
    """
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return _refused("its signature annotation is not base64")
    signer = next((key for key in keys if _verifies(key.public_key, signature, payload)), None)
    if signer is None:
        tried = ", ".join(key.name for key in keys) or "none configured"
        return _refused(f"no trusted key verifies it (tried {tried}): signed by another key, or the payload changed")
    # Read only after the signature verified: from here on the payload is the signer's word.
    critical, optional = _claims(payload)
    if critical is None:
        return _refused("its payload is not a cosign simple-signing document", signer.name)
    if critical.get("type") != PAYLOAD_TYPE:
        return _refused(f"its payload's type is {critical.get('type')!r}, not {PAYLOAD_TYPE!r}", signer.name)
    signed = (critical.get("image") or {}).get("docker-manifest-digest")
    if signed != artifact_digest:
        return _refused(f"it signed {signed}, not {artifact_digest} which would run", signer.name)
    if artifact_reference is not None:
        named = str((critical.get("identity") or {}).get("docker-reference") or "")
        if _repository(named) != _repository(artifact_reference):
            return _refused(
                f"it signed the image for {named or 'no repository'}, not {artifact_reference}", signer.name
            )
    return SignatureResult(FORMAT, True, identity=signer.name, signing_time=_signing_time(optional))


def _verifies(key: Any, signature: bytes, payload: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    # cosign hashes with SHA-256 by default; a KMS key (or --signing-algorithm) may use the curve's or
    # the RSA key spec's own hash. Trying each is safe: every candidate is a full-strength hash.
    attempts: list[Callable[[], None]] = []
    if isinstance(key, ec.EllipticCurvePublicKey):
        own = {"secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}.get(key.curve.name)
        for digest in [hashes.SHA256(), *([own] if own else [])]:
            attempts.append(partial(key.verify, signature, payload, ec.ECDSA(digest)))
    elif isinstance(key, rsa.RSAPublicKey):
        for digest in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)
            attempts.append(partial(key.verify, signature, payload, padding.PKCS1v15(), digest))
            attempts.append(partial(key.verify, signature, payload, pss, digest))
    elif isinstance(key, ed25519.Ed25519PublicKey):
        attempts.append(partial(key.verify, signature, payload))
    for attempt in attempts:
        try:
            attempt()
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


def _claims(payload: bytes) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    try:
        document = json.loads(payload)
    except ValueError:
        return None, {}
    if not isinstance(document, dict) or not isinstance(document.get("critical"), dict):
        return None, {}
    optional = document.get("optional")
    return document["critical"], optional if isinstance(optional, dict) else {}


def _repository(reference: str) -> str:
    """``host/repository`` of a reference, without its tag or digest."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _signing_time(optional: dict[str, Any]) -> str | None:
    # skopeo and containers/image write `optional.timestamp` (epoch seconds); cosign itself writes none.
    timestamp = optional.get("timestamp")
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _refused(reason: str, identity: str | None = None) -> SignatureResult:
    return SignatureResult(FORMAT, False, identity=identity, reason=f"The cosign signature is not trusted: {reason}.")
