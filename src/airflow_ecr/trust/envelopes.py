"""
Notation signature envelopes, read: a JWS (``application/jose+json``) or COSE_Sign1
(``application/cose``) envelope decoded, its signature checked with its signing certificate's key,
and its headers interpreted as the Notary Project's signature specification says.

The format's one home: the artifact and envelope media types (which :mod:`.referrers` looks for),
the protected headers Notation and AWS Signer's plugin define, and the algorithms. What a policy
makes of an envelope (trust stores, identities, levels, revocation) is :mod:`.notation`'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_ecr.exceptions import EcrConfigurationError

JWS_MEDIA_TYPE = "application/jose+json"
COSE_MEDIA_TYPE = "application/cose"
ENVELOPE_MEDIA_TYPES = frozenset({JWS_MEDIA_TYPE, COSE_MEDIA_TYPE})
NOTATION_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
AWS_SIGNER_PLUGIN = "com.amazonaws.signer.notation.plugin"
AWS_PROFILE_VERSION = "com.amazonaws.signer.signingProfileVersion"
AWS_SIGNING_JOB = "com.amazonaws.signer.signingJob"
SCHEME_STORE_KIND = {"notary.x509": "ca", "notary.x509.signingAuthority": "signingAuthority"}


def envelope_media_types() -> frozenset[str]:
    """The signature envelope media types Notation signs in (JWS and COSE)."""
    return ENVELOPE_MEDIA_TYPES


NOTARY_PAYLOAD = "application/vnd.cncf.notary.payload.v1+json"
SIGNING_SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
EXPIRY_HEADER = "io.cncf.notary.expiry"
VERIFICATION_PLUGIN = "io.cncf.notary.verificationPlugin"
PLUGIN_MIN_VERSION = "io.cncf.notary.verificationPluginMinVersion"
NOTARY_CRITICAL = frozenset(
    {SIGNING_SCHEME, AUTHENTIC_SIGNING_TIME, EXPIRY_HEADER, VERIFICATION_PLUGIN, PLUGIN_MIN_VERSION}
)
JWS_ALGORITHMS = ("PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
# RFC 9053 / RFC 8230 algorithm labels Notation signs with, as (hash, RSA-PSS?).
COSE_ALGORITHMS = {
    -37: ("SHA256", True),
    -38: ("SHA384", True),
    -39: ("SHA512", True),
    -7: ("SHA256", False),
    -35: ("SHA384", False),
    -36: ("SHA512", False),
}


@dataclass(frozen=True)
class Envelope:
    """
    What a signature envelope says, whether its signature holds, and what its headers mean.

    :param problem: why its integrity fails (bad signature, unknown critical header…), else None.
    :param chain: its certificates, the signing certificate first.
    :param signing_scheme: ``notary.x509`` or ``notary.x509.signingAuthority``.
    :param signing_time: the (authentic, for a signing authority) signing time.
    :param expiry: when the signature expires, if it says.
    :param target_digest: the digest the payload signs.
    :param attributes: the protected header (string keys only).
    """

    problem: str | None
    chain: tuple[Any, ...]
    signing_scheme: str = "notary.x509"
    signing_time: datetime | None = None
    expiry: datetime | None = None
    target_digest: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_aws_signer(self) -> bool:
        return self.attributes.get(VERIFICATION_PLUGIN) == AWS_SIGNER_PLUGIN


def parse_envelope(envelope: bytes, media_type: str) -> Envelope:
    """
    Decode an envelope, verify its signature with its signing certificate's key and read its headers.

    :param envelope: the envelope's bytes.
    :param media_type: ``application/jose+json`` or ``application/cose``.
    :raises ValueError: (one sentence) the bytes are no envelope of that type or carry no certificates.
    """
    if media_type == JWS_MEDIA_TYPE:
        return _parse_jws(envelope)
    if media_type == COSE_MEDIA_TYPE:
        return _parse_cose(envelope)
    raise ValueError(f"the signature's media type {media_type!r} is not a Notation envelope")


def _import(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise EcrConfigurationError(
            f"Verifying Notation signatures needs {module.split('.')[0]}: pip install 'airflow-ecr[signatures]'."
        ) from None


def _parse_jws(envelope: bytes) -> Envelope:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    jws = _import("joserfc.jws")
    jwk = _import("joserfc.jwk")
    registry_module = _import("joserfc.registry")
    try:
        document = json.loads(envelope)
        protected = json.loads(
            base64.urlsafe_b64decode(document["protected"] + "=" * (-len(document["protected"]) % 4))
        )
        chain = tuple(x509.load_der_x509_certificate(base64.b64decode(c)) for c in document["header"]["x5c"])
    except (ValueError, KeyError, TypeError):
        raise ValueError("the signature is not a JWS envelope with an x5c certificate chain") from None
    if not chain:
        raise ValueError("the signature's x5c certificate chain is empty")
    problem = _header_problem(protected)
    payload = b""
    if not problem:
        key_class = jwk.ECKey if protected.get("alg", "").startswith("ES") else jwk.RSAKey
        # joserfc refuses critical headers it does not know: declare the ones _header_problem accepted.
        known = {n: registry_module.HeaderParameter(n, _accept_any) for n in protected.get("crit", [])}
        registry = jws.JWSRegistry(header_registry=known, algorithms=JWS_ALGORITHMS, strict_check_header=False)
        # AWS Signer's protected header (ARNs, plugin names) outgrows joserfc's default 512 bytes.
        registry.max_header_length = 8192
        try:
            # As PEM: joserfc before 1.6 imports keys from bytes, not from `cryptography` objects.
            pem = chain[0].public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            key = key_class.import_key(pem)
            payload = jws.deserialize_json(document, key, registry=registry).payload
        except Exception as err:  # joserfc's JoseError, or a key of the wrong type for alg
            problem = f"the signature does not verify with its signing certificate's key ({type(err).__name__})"
    return _envelope(problem, chain, protected, payload, _rfc3339)


def _accept_any(value: Any) -> None:
    """Header values are checked by _header_problem, not by joserfc."""


def _parse_cose(envelope: bytes) -> Envelope:
    from cryptography import x509

    cbor2 = _import("cbor2")
    try:
        message = cbor2.loads(envelope)
        if getattr(message, "tag", None) != 18:
            raise ValueError
        protected_bytes, unprotected, payload, signature = message.value
        protected = cbor2.loads(protected_bytes)
        certificates = unprotected[33]
        certificates = [certificates] if isinstance(certificates, bytes) else list(certificates)
        chain = tuple(x509.load_der_x509_certificate(bytes(c)) for c in certificates)
    except (ValueError, KeyError, TypeError, cbor2.CBORDecodeError):
        raise ValueError("the signature is not a COSE_Sign1 envelope with an x5chain certificate chain") from None
    header = {("alg" if k == 1 else "crit" if k == 2 else "cty" if k == 3 else k): v for k, v in protected.items()}
    problem = _header_problem(header)
    if not problem:
        to_be_signed = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
        problem = _cose_signature_problem(header.get("alg"), chain[0].public_key(), bytes(signature), to_be_signed)
    return _envelope(
        problem, chain, header, payload if not problem else b"", lambda v: v if isinstance(v, datetime) else None
    )


def _cose_signature_problem(alg: Any, public_key: Any, signature: bytes, message: bytes) -> str | None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    if alg not in COSE_ALGORITHMS:
        return f"the signature's COSE algorithm {alg!r} is not one Notation signs with"
    hash_name, pss = COSE_ALGORITHMS[alg]
    algorithm = getattr(hashes, hash_name)()
    try:
        if pss and isinstance(public_key, rsa.RSAPublicKey):
            scheme = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
            public_key.verify(signature, message, scheme, algorithm)
        elif not pss and isinstance(public_key, ec.EllipticCurvePublicKey):
            half = len(signature) // 2
            r, s = int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            der = utils.encode_dss_signature(r, s)
            public_key.verify(der, message, ec.ECDSA(algorithm))
        else:
            return "the signature's algorithm does not fit its signing certificate's key"
    except InvalidSignature:
        return "the signature does not verify with its signing certificate's key"
    return None


def _header_problem(header: Mapping[str, Any]) -> str | None:
    if header.get("cty") != NOTARY_PAYLOAD:
        return f"the signature's content type is {header.get('cty')!r}, not {NOTARY_PAYLOAD}"
    scheme = header.get(SIGNING_SCHEME)
    if scheme not in SCHEME_STORE_KIND:
        return f"the signature's signing scheme {scheme!r} is not notary.x509 or notary.x509.signingAuthority"
    critical = header.get("crit", [])
    if not isinstance(critical, (list, tuple)) or SIGNING_SCHEME not in critical:
        return "the signature does not mark its signing scheme critical"
    understood = set(NOTARY_CRITICAL)
    plugin = header.get(VERIFICATION_PLUGIN)
    if plugin == AWS_SIGNER_PLUGIN:
        understood |= {AWS_PROFILE_VERSION, AWS_SIGNING_JOB}
    elif plugin is not None:
        return f"the signature needs the verification plugin {plugin!r}, which airflow-ecr does not run"
    unknown = [str(name) for name in critical if name not in understood]
    if unknown:
        return f"the signature has critical headers airflow-ecr does not understand: {', '.join(unknown)}"
    return None


def _envelope(
    problem: str | None,
    chain: tuple[Any, ...],
    header: Mapping[str, Any],
    payload: bytes,
    to_time: Callable[[Any], datetime | None],
) -> Envelope:
    attributes = {k: v for k, v in header.items() if isinstance(k, str)}
    scheme = str(attributes.get(SIGNING_SCHEME, "notary.x509"))
    time_key = AUTHENTIC_SIGNING_TIME if scheme == "notary.x509.signingAuthority" else SIGNING_TIME
    signing_time, expiry = to_time(attributes.get(time_key)), to_time(attributes.get(EXPIRY_HEADER))
    digest = ""
    if not problem:
        try:
            digest = str(json.loads(payload)["targetArtifact"]["digest"])
        except (ValueError, KeyError, TypeError):
            problem = "the signature's payload names no targetArtifact digest"
    if not problem and signing_time is None:
        problem = f"the signature has no valid {time_key}"
    return Envelope(
        problem,
        chain,
        scheme if scheme in SCHEME_STORE_KIND else "notary.x509",
        signing_time,
        expiry,
        digest,
        attributes,
    )


def _rfc3339(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None
