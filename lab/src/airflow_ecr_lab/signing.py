"""The lab's signer: test keys and certificates, Notation and cosign signatures, pushed into a lab registry.

Test rig only (the product never imports it). Everything is made with ``cryptography``, ``joserfc``
and ``cbor2``; nothing here verifies anything (that is :mod:`airflow_ecr.trust`'s job).

- :func:`make_pki`: a root CA and a code-signing leaf, and an "AWS Signer"-like signing authority
  root and leaf, written as a Notation trust store (``truststore/x509/{ca,signingAuthority}/<name>/``);
- :func:`notation_jws` / :func:`notation_cose`: a Notation signature envelope for a digest;
- :func:`cosign_payload` / :func:`cosign_sign`: cosign's simple-signing payload and its signature;
- :class:`LabRegistry`: pushes a signature for a subject digest as an OCI 1.1 referrer (a manifest
  with ``artifactType`` and ``subject``) plus the referrers tag-schema index ``sha256-<hex>``, and
  cosign's legacy ``sha256-<hex>.sig`` tag.

The lab's registry (Debian's docker-registry 2.8.2) has no referrers API (it answers
``GET /v2/<name>/referrers/<digest>`` with a plain 404) but stores manifests carrying
``artifactType`` and ``subject`` as given, byte for byte; so clients find them through the tag schema.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_ecr.images.manifests import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from airflow_ecr.trust.cosign import ARTIFACT_TYPE as COSIGN_ARTIFACT_TYPE
from airflow_ecr.trust.cosign import SIGNATURE_ANNOTATION as COSIGN_SIGNATURE_ANNOTATION
from airflow_ecr.trust.cosign import SIMPLE_SIGNING_MEDIA_TYPE
from airflow_ecr.trust.envelopes import NOTARY_PAYLOAD as NOTATION_PAYLOAD_TYPE
from airflow_ecr.trust.envelopes import NOTATION_ARTIFACT_TYPE
from airflow_ecr_lab.health import load
from airflow_ecr_lab.messages import LabError
from airflow_ecr_lab.paths import LabPaths
from airflow_ecr_lab.repository import _account, _auth, _session

# The formats' names are the product's (one home); how an envelope is built here is the lab's own,
# written from the specifications, so that the verifiers are tested against more than themselves.
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
X509 = "notary.x509"
X509_SIGNING_AUTHORITY = "notary.x509.signingAuthority"


# -- keys and certificates ------------------------------------------------------------------------
@dataclass(frozen=True)
class Signer:
    """
    A signing key and its certificate chain.

    :param key: the private key (``cryptography``).
    :param chain: the certificates, leaf first, root last.
    """

    key: Any
    chain: tuple[Any, ...]

    @property
    def subject(self) -> str:
        """The leaf's subject as Notation writes identities (``CN=...,O=...``)."""
        return str(self.chain[0].subject.rfc4514_string())


@dataclass(frozen=True)
class LabPki:
    """
    The lab's signing PKI and its Notation trust store.

    :param directory: holds ``truststore/x509/ca/<name>/root.crt`` and
        ``truststore/x509/signingAuthority/<name>/root.crt``.
    :param name: the trust stores' name (``ca:<name>``, ``signingAuthority:<name>`` in a trust policy).
    :param ca: a code-signing leaf under the root CA.
    :param authority: a leaf under the signing-authority root (as AWS Signer's).
    """

    directory: Path
    name: str
    ca: Signer
    authority: Signer


def new_key(kind: str = "ec-p256") -> Any:
    """A private key: ``ec-p256``, ``ec-p384``, ``rsa-2048``, ``rsa-3072`` or ``ed25519``.

    :param kind: the key type.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if kind.startswith("ec-"):
        return ec.generate_private_key({"ec-p256": ec.SECP256R1(), "ec-p384": ec.SECP384R1()}[kind])
    if kind.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise LabError(f"no key type {kind!r}")


def make_root(common_name: str, key: Any | None = None, days: int = 3650) -> Signer:
    """A self-signed root CA.

    :param common_name: its CN.
    :param key: its private key (a new P-256 key by default).
    :param days: its validity.
    """
    from cryptography import x509

    key = key or new_key()
    now = dt.datetime.now(dt.timezone.utc)
    name = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return Signer(key, (builder.sign(key, _hash_for(key)),))


def issue_leaf(
    issuer: Signer,
    common_name: str,
    key: Any | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    code_signing: bool = True,
) -> Signer:
    """A leaf certificate signed by ``issuer``, with the code-signing EKU Notation requires.

    :param issuer: the CA (its leaf-first chain becomes the leaf's chain tail).
    :param common_name: the leaf's CN (its identity is ``CN=<name>,O=airflow-ecr lab``).
    :param key: its private key (a new P-256 key by default).
    :param not_before: validity start (default: a day ago).
    :param not_after: validity end (default: in a year); in the past makes an expired certificate.
    :param code_signing: whether to add the codeSigning extended key usage.
    """
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = key or new_key()
    now = dt.datetime.now(dt.timezone.utc)
    issuer_cert = issuer.chain[0]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()), critical=False)
    )
    if code_signing:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return Signer(key, (builder.sign(issuer.key, _hash_for(issuer.key)), *issuer.chain))


def make_pki(directory: Path, name: str = "lab") -> LabPki:
    """A root CA with a code-signing leaf, a signing-authority root with its leaf, and their trust store.

    :param directory: where ``truststore/`` is written (a Notation configuration directory).
    :param name: the trust stores' name.
    """
    ca_root = make_root("airflow-ecr lab root CA")
    authority_root = make_root("airflow-ecr lab signing authority root (AWS Signer stand-in)")
    pki = LabPki(
        directory,
        name,
        issue_leaf(ca_root, "lab signer"),
        issue_leaf(authority_root, "lab signing profile"),
    )
    write_trust_store(directory, "ca", name, [ca_root.chain[0]])
    write_trust_store(directory, "signingAuthority", name, [authority_root.chain[0]])
    return pki


def write_trust_store(directory: Path, store_type: str, name: str, certificates: Sequence[Any]) -> Path:
    """Write ``certificates`` as the Notation trust store ``<store_type>:<name>``; returns its folder.

    :param directory: the Notation configuration directory.
    :param store_type: ``ca``, ``signingAuthority`` or ``tsa``.
    :param name: the store's name.
    :param certificates: the trusted (root) certificates.
    """
    from cryptography.hazmat.primitives.serialization import Encoding

    folder = directory / "truststore" / "x509" / store_type / name
    folder.mkdir(parents=True, exist_ok=True)
    for number, certificate in enumerate(certificates):
        (folder / f"root-{number}.crt").write_bytes(certificate.public_bytes(Encoding.PEM))
    return folder


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "airflow-ecr lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(ca: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _hash_for(key: Any) -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


# -- Notation envelopes ---------------------------------------------------------------------------
def notation_payload(digest: str, size: int, media_type: str = DOCKER_MANIFEST) -> bytes:
    """Notation's signed payload: the target artifact's descriptor.

    :param digest: the signed manifest's digest.
    :param size: its size in bytes.
    :param media_type: its media type.
    """
    descriptor = {"mediaType": media_type, "digest": digest, "size": size}
    return json.dumps({"targetArtifact": descriptor}, separators=(",", ":")).encode()


def _notation_claims(
    signing_scheme: str,
    signing_time: dt.datetime | None,
    expiry: dt.datetime | None,
    extra_critical: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], list[str]]:
    """The signed attributes (name -> datetime or value) and the critical ones' names."""
    signing_time = signing_time or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    time_name = (
        "io.cncf.notary.authenticSigningTime"
        if signing_scheme == X509_SIGNING_AUTHORITY
        else "io.cncf.notary.signingTime"
    )
    claims: dict[str, Any] = {"io.cncf.notary.signingScheme": signing_scheme, time_name: signing_time}
    critical = ["io.cncf.notary.signingScheme"]
    if time_name == "io.cncf.notary.authenticSigningTime":
        critical.append(time_name)
    if expiry is not None:
        claims["io.cncf.notary.expiry"] = expiry
        critical.append("io.cncf.notary.expiry")
    for name, value in (extra_critical or {}).items():
        claims[name] = value
        critical.append(name)
    return claims, critical


def notation_jws(
    signer: Signer,
    payload: bytes,
    signing_scheme: str = X509,
    signing_time: dt.datetime | None = None,
    expiry: dt.datetime | None = None,
    extra_critical: Mapping[str, Any] | None = None,
) -> bytes:
    """A Notation JWS envelope (``application/jose+json``, flattened JSON serialization).

    :param signer: the key and chain (``x5c``, leaf first).
    :param payload: :func:`notation_payload`'s bytes.
    :param signing_scheme: ``notary.x509`` (signingTime) or ``notary.x509.signingAuthority``
        (authenticSigningTime).
    :param signing_time: when it was signed (default: now).
    :param expiry: ``io.cncf.notary.expiry``, if any.
    :param extra_critical: more critical protected attributes (a verifier must refuse unknown ones).
    """
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
    from joserfc import jws
    from joserfc.jwk import ECKey, RSAKey
    from joserfc.registry import HeaderParameter

    claims, critical = _notation_claims(signing_scheme, signing_time, expiry, extra_critical)
    protected: dict[str, Any] = {"alg": _jws_alg(signer.key), "crit": critical, "cty": NOTATION_PAYLOAD_TYPE}
    for name, value in claims.items():
        protected[name] = _rfc3339(value) if isinstance(value, dt.datetime) else value
    x5c = [base64.b64encode(cert.public_bytes(Encoding.DER)).decode() for cert in signer.chain]
    header = {"x5c": x5c, "io.cncf.notary.signingAgent": "airflow-ecr-lab/1"}
    pem = signer.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    # joserfc checks header names: declare Notation's own (they are not JOSE-registered).
    names = {*protected, *header} - {"alg", "crit", "cty", "x5c"}
    registry = jws.JWSRegistry(
        header_registry={name: HeaderParameter(name, _any_value) for name in names},
        algorithms=[protected["alg"]],
    )
    key: Any = RSAKey.import_key(pem) if protected["alg"].startswith("PS") else ECKey.import_key(pem)
    envelope = jws.serialize_json({"protected": protected, "header": header}, payload, key, registry=registry)
    return json.dumps(envelope).encode()


def _any_value(value: Any) -> None:
    """Notation's attributes are checked by verifiers, not by the signer."""


def _jws_alg(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "PS384" if key.key_size == 3072 else "PS512" if key.key_size >= 4096 else "PS256"
    raise LabError("Notation signs with ECDSA or RSA-PSS keys only")


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def notation_cose(
    signer: Signer,
    payload: bytes,
    signing_scheme: str = X509,
    signing_time: dt.datetime | None = None,
    expiry: dt.datetime | None = None,
    extra_critical: Mapping[str, Any] | None = None,
) -> bytes:
    """A Notation COSE_Sign1 envelope (``application/cose``), CBOR tag 18.

    :param signer: the key and chain (``x5chain``, label 33, leaf first).
    :param payload: :func:`notation_payload`'s bytes.
    :param signing_scheme: as :func:`notation_jws`.
    :param signing_time: when it was signed (default: now).
    :param expiry: ``io.cncf.notary.expiry``, if any.
    :param extra_critical: more critical protected attributes.
    """
    import cbor2
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from cryptography.hazmat.primitives.serialization import Encoding

    claims, critical = _notation_claims(signing_scheme, signing_time, expiry, extra_critical)
    alg = _jws_alg(signer.key)
    cose_alg = {"ES256": -7, "ES384": -35, "ES512": -36, "PS256": -37, "PS384": -38, "PS512": -39}[alg]
    protected_map: dict[Any, Any] = {1: cose_alg, 2: critical, 3: NOTATION_PAYLOAD_TYPE}
    for name, value in claims.items():
        # Notation's COSE times are CBOR tag 1 (epoch seconds).
        protected_map[name] = cbor2.CBORTag(1, int(value.timestamp())) if isinstance(value, dt.datetime) else value
    protected = cbor2.dumps(protected_map)
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
    if isinstance(signer.key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(signer.key.sign(to_sign, ec.ECDSA(digest)))
        width = (signer.key.curve.key_size + 7) // 8
        signature = r.to_bytes(width, "big") + s.to_bytes(width, "big")  # COSE: r || s, not DER
    else:
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        signature = signer.key.sign(to_sign, pss, digest)
    unprotected = {
        33: [cert.public_bytes(Encoding.DER) for cert in signer.chain],
        "io.cncf.notary.signingAgent": "airflow-ecr-lab/1",
    }
    return bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature])))


# -- cosign ---------------------------------------------------------------------------------------
def cosign_payload(digest: str, repository: str, optional: Mapping[str, Any] | None = None) -> bytes:
    """cosign's simple-signing payload for ``digest``, as cosign marshals it.

    :param digest: the signed manifest's digest.
    :param repository: ``host/repository`` (cosign's ``docker-reference``).
    :param optional: the ``optional`` annotations (cosign writes null when none).
    """
    critical = {
        "identity": {"docker-reference": repository},
        "image": {"docker-manifest-digest": digest},
        "type": "cosign container image signature",
    }
    return json.dumps(
        {"critical": critical, "optional": dict(optional) if optional else None}, separators=(",", ":")
    ).encode()


def cosign_sign(key: Any, payload: bytes) -> str:
    """The base64 signature cosign puts in the layer annotation: ECDSA/SHA-256 (DER), RSA PKCS#1 v1.5, Ed25519.

    :param key: the private key.
    :param payload: the exact payload bytes.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(payload)
    else:
        raise LabError(f"cosign does not sign with {type(key).__name__}")
    return base64.b64encode(signature).decode()


def public_pem(key: Any) -> bytes:
    """The PEM SubjectPublicKeyInfo of a private key (what ``cosign.pub`` holds).

    :param key: the private key.
    """
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))


# -- the registry ---------------------------------------------------------------------------------
def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class LabRegistry:
    """
    One lab account registry, written to through its HTTP API (through the lab's proxy, with its CA).

    :param host: the registry host.
    :param session: a ``requests.Session`` with the account's current password.
    :param auth: the docker auth config (``username``, ``password``) readers pass to the product.
    """

    host: str
    session: Any
    auth: dict[str, str]

    @classmethod
    def of(cls, directory: Path | None, account_id: str | None = None) -> LabRegistry:
        """The registry of ``account_id`` (the lab's first account by default).

        :param directory: the lab directory.
        :param account_id: the account.
        """
        info = load(LabPaths.of(directory).root)
        account_id = account_id or info["accounts"][0]["account_id"]
        auth = _auth(info, account_id)
        return cls(_account(info, account_id)["host"], _session(info, auth), auth)

    def _url(self, repository: str, path: str) -> str:
        return f"https://{self.host}/v2/{repository}/{path}"

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` (monolithic: POST, then PUT ?digest=); returns its digest.

        :param repository: the repository.
        :param data: the blob.
        """
        digest = _sha256(data)
        started = self.session.post(self._url(repository, "blobs/uploads/"), timeout=30)
        if started.status_code != 202:
            raise LabError(f"starting an upload to {self.host}/{repository} failed: HTTP {started.status_code}")
        done = self.session.put(
            started.headers["Location"],
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
        if done.status_code != 201:
            raise LabError(
                f"uploading a blob to {self.host}/{repository} failed: HTTP {done.status_code} {done.text[:300]}"
            )
        return digest

    def push_manifest(self, repository: str, reference: str, manifest: Mapping[str, Any]) -> tuple[str, int]:
        """PUT a manifest (or index) under ``reference`` (a tag or its digest); returns (digest, size).

        :param repository: the repository.
        :param reference: a tag, or the manifest's own digest.
        :param manifest: the document (its ``mediaType`` is the Content-Type).
        """
        body = json.dumps(manifest, separators=(",", ":")).encode()
        digest = _sha256(body)
        put = self.session.put(
            self._url(repository, f"manifests/{digest if reference == 'digest' else reference}"),
            data=body,
            headers={"Content-Type": manifest["mediaType"]},
            timeout=30,
        )
        if put.status_code != 201:
            raise LabError(
                f"pushing a manifest to {self.host}/{repository} failed: HTTP {put.status_code} {put.text[:300]}"
            )
        return digest, len(body)

    def descriptor(self, repository: str, digest: str) -> dict[str, Any]:
        """The descriptor (mediaType, digest, size) of a manifest in the repository.

        :param repository: the repository.
        :param digest: the manifest's digest, or a tag (the descriptor then has the digest it names).
        """
        got = self.session.head(
            self._url(repository, f"manifests/{digest}"),
            headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}, {OCI_INDEX}"},
            timeout=30,
        )
        if got.status_code != 200:
            raise LabError(f"{repository}@{digest} is not in {self.host} (HTTP {got.status_code})")
        media_type = got.headers["Content-Type"].split(";")[0]
        named = got.headers.get("Docker-Content-Digest", digest)
        return {"mediaType": media_type, "digest": named, "size": int(got.headers["Content-Length"])}

    def push_referrer(
        self,
        repository: str,
        subject_digest: str,
        artifact_type: str,
        layer_media_type: str,
        blob: bytes,
        layer_annotations: Mapping[str, str] | None = None,
        tag_schema: bool = True,
    ) -> str:
        """Push a signature as an OCI 1.1 referrer of ``subject_digest`` (and add it to the tag-schema index).

        :param repository: the repository.
        :param subject_digest: the signed manifest's digest.
        :param artifact_type: the manifest's ``artifactType``.
        :param layer_media_type: the one layer's media type (the envelope's).
        :param blob: the layer (an envelope, or a cosign payload).
        :param layer_annotations: the layer's annotations (cosign's signature).
        :param tag_schema: whether to list it in the ``sha256-<hex>`` index too.
        :returns: the signature manifest's digest.
        """
        empty = self.push_blob(repository, b"{}")
        layer: dict[str, Any] = {
            "mediaType": layer_media_type,
            "digest": self.push_blob(repository, blob),
            "size": len(blob),
        }
        if layer_annotations:
            layer["annotations"] = dict(layer_annotations)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
            "layers": [layer],
            "subject": self.descriptor(repository, subject_digest),
            "annotations": {"org.opencontainers.image.created": _rfc3339(dt.datetime.now(dt.timezone.utc))},
        }
        digest, size = self.push_manifest(repository, "digest", manifest)
        if tag_schema:
            self.add_to_tag_schema(
                repository,
                subject_digest,
                {"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "artifactType": artifact_type},
            )
        return digest

    def add_to_tag_schema(self, repository: str, subject_digest: str, descriptor: Mapping[str, Any]) -> str:
        """Add ``descriptor`` to the referrers tag-schema index ``sha256-<hex>``; returns the index's digest.

        :param repository: the repository.
        :param subject_digest: the signed manifest's digest.
        :param descriptor: the referrer's descriptor (with its ``artifactType``).
        """
        tag = subject_digest.replace(":", "-", 1)
        got = self.session.get(self._url(repository, f"manifests/{tag}"), headers={"Accept": OCI_INDEX}, timeout=30)
        if got.status_code == 200:
            index = got.json()
        elif got.status_code == 404:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        else:
            raise LabError(f"reading {self.host}/{repository}:{tag} failed: HTTP {got.status_code}")
        index["manifests"] = [m for m in index["manifests"] if m.get("digest") != descriptor["digest"]] + [
            dict(descriptor)
        ]
        return self.push_manifest(repository, tag, index)[0]

    def push_notation(self, repository: str, subject_digest: str, envelope: bytes, media_type: str) -> str:
        """Push a Notation signature envelope for ``subject_digest``; returns its manifest's digest.

        :param repository: the repository.
        :param subject_digest: the signed manifest's digest.
        :param envelope: :func:`notation_jws` or :func:`notation_cose`'s bytes.
        :param media_type: ``application/jose+json`` or ``application/cose``.
        """
        return self.push_referrer(repository, subject_digest, NOTATION_ARTIFACT_TYPE, media_type, envelope)

    def push_cosign_referrer(self, repository: str, subject_digest: str, payload: bytes, signature_b64: str) -> str:
        """Push a cosign signature in cosign's OCI 1.1 referrers form; returns its manifest's digest.

        :param repository: the repository.
        :param subject_digest: the signed manifest's digest.
        :param payload: :func:`cosign_payload`'s bytes.
        :param signature_b64: :func:`cosign_sign`'s answer.
        """
        annotations = {COSIGN_SIGNATURE_ANNOTATION: signature_b64}
        return self.push_referrer(
            repository, subject_digest, COSIGN_ARTIFACT_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, payload, annotations
        )

    def push_cosign_tag(self, repository: str, subject_digest: str, payload: bytes, signature_b64: str) -> str:
        """Add a cosign signature under cosign's legacy tag ``sha256-<hex>.sig``; returns the manifest's digest.

        :param repository: the repository.
        :param subject_digest: the signed manifest's digest.
        :param payload: :func:`cosign_payload`'s bytes.
        :param signature_b64: :func:`cosign_sign`'s answer.
        """
        tag = subject_digest.replace(":", "-", 1) + ".sig"
        got = self.session.get(self._url(repository, f"manifests/{tag}"), headers={"Accept": OCI_MANIFEST}, timeout=30)
        layers = got.json()["layers"] if got.status_code == 200 else []
        layer = {
            "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
            "digest": self.push_blob(repository, payload),
            "size": len(payload),
            "annotations": {COSIGN_SIGNATURE_ANNOTATION: signature_b64},
        }
        layers = [*layers, layer]
        # As cosign writes it: an image config whose rootfs lists the payload layers.
        config = json.dumps(
            {
                "architecture": "",
                "os": "",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [entry["digest"] for entry in layers]},
            },
            separators=(",", ":"),
        ).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(repository, config), "size": len(config)},
            "layers": layers,
        }
        return self.push_manifest(repository, tag, manifest)[0]
