"""Notation verification: the Notary Project's own vectors (tests/data/notation) and envelopes made here."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import ExtendedKeyUsageOID
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.trust.notation import (
    LEVELS,
    NOTATION_ARTIFACT_TYPE,
    RevocationAnswer,
    RevocationQuery,
    TrustPolicy,
    TrustStore,
    aws_certificate_hashes,
    envelope_media_types,
    load_trust_policy,
    verify_envelope,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "notation"
ENVELOPES = DATA / "envelopes"
JOSE, COSE = "application/jose+json", "application/cose"
MOCK_DIGEST = "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e"
ALPINE_DIGEST = "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0"
TIMESTAMP_DIGEST = "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda"
NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)
REFERENCE = "registry.acme-rockets.io/software/net-monitor"


def policy(
    level: str = "strict", stores: tuple[str, ...] = ("ca:valid-trust-store",), identities=("*",)
) -> TrustPolicy:
    return TrustPolicy("test", ("*",), level, dict(LEVELS[level]), stores, tuple(identities))


UPSTREAM = TrustStore(DATA / "truststore")


def verify(name: str, digest: str, pol: TrustPolicy | None = None, store: TrustStore = UPSTREAM, now=NOW, **kw):
    media = COSE if name.endswith(".sig") and (ENVELOPES / name).read_bytes()[:1] == b"\xd2" else JOSE
    return verify_envelope((ENVELOPES / name).read_bytes(), media, digest, REFERENCE, pol or policy(), store, now, **kw)


def own_certificate_store(tmp_path: Path, name: str) -> TrustStore:
    """A trust store holding the self-signed certificate an upstream envelope carries."""
    raw = (ENVELOPES / name).read_bytes()
    if raw[:1] == b"\xd2":
        der = bytes(cbor2.loads(raw).value[1][33][0])
    else:
        der = base64.b64decode(json.loads(raw)["header"]["x5c"][0])
    directory = tmp_path / "x509" / "ca" / "own"
    directory.mkdir(parents=True)
    (directory / "own.cer").write_bytes(der)
    return TrustStore(tmp_path)


# --- the reference implementation's vectors ---------------------------------------------------------


def test_upstream_jws_and_cose_envelopes_verify():
    for name, digest in [
        ("ca_valid_sig_env.json", MOCK_DIGEST),
        ("jwsWithTimestamp.sig", TIMESTAMP_DIGEST),
        ("coseWithTimestamp.sig", TIMESTAMP_DIGEST),
    ]:
        result = verify(name, digest)
        assert result.verified, (name, result.reason)
        assert result.format == "notation" and result.level == "strict" and not result.warnings
    result = verify("ca_valid_sig_env.json", MOCK_DIGEST)
    assert result.identity == "CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"
    assert result.signing_time == "2020-11-09T07:00:00Z"


def test_upstream_signing_authority_envelope_needs_a_signing_authority_store():
    assert verify("sa_valid_sig_env.json", MOCK_DIGEST, policy(stores=("signingAuthority:valid-trust-store",))).verified
    refused = verify("sa_valid_sig_env.json", MOCK_DIGEST, policy(stores=("ca:valid-trust-store",)))
    assert not refused.verified
    assert "trust store of kind signingAuthority" in refused.reason


def test_upstream_self_signed_envelopes_verify_against_their_own_certificate(tmp_path):
    store = own_certificate_store(tmp_path, "cose_signature.sig")
    assert verify("cose_signature.sig", ALPINE_DIGEST, policy(stores=("ca:own",)), store).verified
    assert verify("jws_signature.sig", ALPINE_DIGEST, policy(stores=("ca:own",)), store).verified
    # The default store does not hold that certificate: an untrusted chain.
    result = verify("cose_signature.sig", ALPINE_DIGEST)
    assert not result.verified
    assert result.reason == "The signature's certificate chain does not end in the trust store 'ca:valid-trust-store'."


def test_upstream_bad_signature_is_an_integrity_failure_even_in_audit():
    result = verify("ca_invalid_sig_env.json", MOCK_DIGEST, policy("audit"))
    assert not result.verified
    assert "does not verify" in result.reason


def test_upstream_tampered_payload_fails():
    document = json.loads((ENVELOPES / "ca_valid_sig_env.json").read_bytes())
    payload = bytearray(base64.urlsafe_b64decode(document["payload"] + "=="))
    payload[-3] ^= 0x01  # one byte of the size
    document["payload"] = base64.urlsafe_b64encode(bytes(payload)).rstrip(b"=").decode()
    result = verify_envelope(json.dumps(document).encode(), JOSE, MOCK_DIGEST, REFERENCE, policy(), UPSTREAM, NOW)
    assert not result.verified and "does not verify" in result.reason


def test_upstream_cose_tampered_byte_fails():
    raw = bytearray((ENVELOPES / "coseWithTimestamp.sig").read_bytes())
    at = raw.index(b'"size"')
    raw[at + 1] = ord("S")
    result = verify_envelope(bytes(raw), COSE, TIMESTAMP_DIGEST, REFERENCE, policy(), UPSTREAM, NOW)
    assert not result.verified and result.reason == "The signature does not verify with its signing certificate's key."


def test_upstream_digest_mismatch_names_both_digests():
    other = "sha256:" + "b" * 64
    result = verify("ca_valid_sig_env.json", other, policy("audit"))
    assert not result.verified
    assert f"is for {MOCK_DIGEST}, not {other} which would run" in result.reason


def test_upstream_wrong_identity_is_refused_and_right_one_accepted():
    right = "x509.subject: C=US, ST=WA, O=Notary, CN=Notation Test Root"
    wrong = "x509.subject: C=US, ST=WA, O=Notary, CN=wabbit-networks.io"
    assert verify("ca_valid_sig_env.json", MOCK_DIGEST, policy(identities=(right,))).verified
    result = verify("ca_valid_sig_env.json", MOCK_DIGEST, policy(identities=(wrong,)))
    assert not result.verified
    assert result.reason == (
        "Signed by CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US, which trust policy 'test' does not trust."
    )


def test_upstream_expired_signature_is_enforced_or_logged_by_level():
    strict = verify("ca_expired_sig_env.json", MOCK_DIGEST)
    assert not strict.verified and strict.reason == "The signature expired on 2022-07-29T23:59:00Z."
    permissive = verify("ca_expired_sig_env.json", MOCK_DIGEST, policy("permissive"))
    assert permissive.verified and permissive.warnings == ("expiry: the signature expired on 2022-07-29T23:59:00Z",)
    # Before its expiry it verifies.
    assert verify("ca_expired_sig_env.json", MOCK_DIGEST, now=datetime(2022, 7, 29, 12, tzinfo=timezone.utc)).verified


def test_upstream_expired_certificate(tmp_path):
    store = own_certificate_store(tmp_path, "sig_env_with_metadata.json")
    digest = "sha256:5a07385af4e6b6af81b0ebfd435aedccdfa3507f0609c658209e1aba57159b2b"
    # The certificate lived one day: at its signing time it verifies, today it has expired.
    at_signing = datetime(2023, 1, 11, 18, 3, tzinfo=timezone.utc)
    assert verify("sig_env_with_metadata.json", digest, policy(stores=("ca:own",)), store, now=at_signing).verified
    result = verify("sig_env_with_metadata.json", digest, policy(stores=("ca:own",)), store)
    assert not result.verified and "expired on 2023-01-12" in result.reason
    store = own_certificate_store(tmp_path / "cose", "coseExpiredWithTimestamp.sig")
    assert not verify("coseExpiredWithTimestamp.sig", TIMESTAMP_DIGEST, policy(stores=("ca:own",)), store).verified


def test_upstream_unknown_verification_plugin_is_refused():
    result = verify("ca_plugin_sig_env.json", MOCK_DIGEST, policy("audit"))
    assert not result.verified and "verification plugin 'plugin-name'" in result.reason


# --- trust policy and trust store ---------------------------------------------------------------------


def write_policy(tmp_path: Path, statements, version="1.0") -> Path:
    path = tmp_path / "trustpolicy.json"
    path.write_text(json.dumps({"version": version, "trustPolicies": statements}))
    return path


def statement(name="prod", scopes=("registry.acme-rockets.io/software/net-monitor",), **kw):
    base = {
        "name": name,
        "registryScopes": list(scopes),
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:acme-rockets"],
        "trustedIdentities": ["x509.subject: C=US, ST=WA, L=Seattle, O=acme-rockets.io"],
    }
    base.update(kw)
    return base


def test_trust_policy_scopes_and_overrides(tmp_path):
    path = write_policy(
        tmp_path,
        [
            statement(signatureVerification={"level": "permissive", "override": {"expiry": "enforce"}}),
            statement("global", ["*"], signatureVerification={"level": "skip"}, trustStores=[], trustedIdentities=[]),
        ],
    )
    document = load_trust_policy(path)
    prod = document.policy_for("registry.acme-rockets.io/software/net-monitor")
    assert prod is not None and prod.name == "prod"
    assert prod.actions["expiry"] == "enforce" and prod.actions["authenticTimestamp"] == "log"
    assert document.policy_for("registry.acme-rockets.io/software/net-monitor:v1").name == "prod"
    assert document.policy_for("other.io/x").name == "global"
    assert load_trust_policy(write_policy(tmp_path, [statement()])).policy_for("other.io/x") is None


@pytest.mark.parametrize(
    ("statements", "version", "problem"),
    [
        ([statement()], "2.0", "version must be"),
        ([], "1.0", "at least one statement"),
        ([statement(), statement()], "1.0", "used twice"),
        ([statement(), statement("b")], "1.0", "in several statements"),
        ([statement(scopes=["*", "a.io/b"])], "1.0", "must stand alone"),
        ([statement(scopes=["a.io/*"])], "1.0", "not a registry/repository"),
        ([statement(scopes=["a.io"])], "1.0", "not a registry/repository"),
        ([statement(scopes=[])], "1.0", "no registryScopes"),
        ([statement(signatureVerification={"level": "lenient"})], "1.0", "level must be one of"),
        ([statement(signatureVerification={"level": "strict", "override": {"integrity": "log"}})], "1.0", "integrity"),
        ([statement(signatureVerification={"level": "strict", "override": {"expiry": "skip"}})], "1.0", "skips"),
        ([statement(signatureVerification={"level": "skip"})], "1.0", "skips verification but names"),
        ([statement(trustStores=[])], "1.0", "both trustStores"),
        ([statement(trustStores=["notary:acme"])], "1.0", "ca|signingAuthority|tsa"),
        ([statement(trustedIdentities=["*", "x509.subject: C=US, ST=WA, O=a"])], "1.0", "'*' must stand alone"),
        ([statement(trustedIdentities=["x509.subject: CN=only"])], "1.0", "C, ST and O are required"),
        ([statement(trustedIdentities=["x509.subject: C=US, ST=WA, O=a=#0401"])], "1.0", "'=#'"),
        ([statement(trustedIdentities=["x509.subject: C=US+ST=WA, O=a"])], "1.0", "multi-valued"),
        (
            [statement(trustedIdentities=["x509.subject: C=US, ST=WA, O=a", "x509.subject: C=US, ST=WA, O=a, CN=b"])],
            "1.0",
            "overlapping",
        ),
        ([statement(trustedIdentities=["acme"])], "1.0", "not x509.subject"),
    ],
)
def test_invalid_trust_policies_name_the_file_and_the_problem(tmp_path, statements, version, problem):
    path = write_policy(tmp_path, statements, version)
    with pytest.raises(EcrConfigurationError) as raised:
        load_trust_policy(path)
    assert str(path) in str(raised.value) and problem in str(raised.value)


def test_unreadable_trust_policy(tmp_path):
    with pytest.raises(EcrConfigurationError, match="cannot be read"):
        load_trust_policy(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(EcrConfigurationError, match="not valid JSON"):
        load_trust_policy(tmp_path / "bad.json")


def test_trust_store_reads_pem_and_der_and_refuses_unknown_stores():
    certificates = UPSTREAM.certificates("ca", "valid-trust-store")
    assert len(certificates) == 4  # three PEM files and one DER file
    with pytest.raises(EcrConfigurationError, match="'ca:nope' does not exist"):
        UPSTREAM.certificates("ca", "nope")
    with pytest.raises(EcrConfigurationError, match="not a Notation trust store name"):
        UPSTREAM.certificates("root", "valid-trust-store")
    with pytest.raises(EcrConfigurationError, match="does not exist"):
        verify("ca_valid_sig_env.json", MOCK_DIGEST, policy(stores=("ca:missing",)))


def test_media_types_and_artifact_type():
    assert envelope_media_types() == frozenset({JOSE, COSE})
    assert NOTATION_ARTIFACT_TYPE == "application/vnd.cncf.notary.signature"


# --- envelopes made here: levels, AWS Signer, revocation --------------------------------------------

SUBJECT = "C=US,ST=WA,O=acme-rockets.io,CN=signer"
PROFILE = "arn:aws:signer:us-west-2:123456789012:/signing-profiles/prod"
PROFILE_VERSION = f"{PROFILE}/abcdef1234"
JOB = "arn:aws:signer:us-west-2:123456789012:/signing-jobs/0f1e2d"
DIGEST = "sha256:" + "a" * 64


def _name(text: str) -> x509.Name:
    return x509.Name.from_rfc4514_string(text)


def _certificate(subject, issuer, key, issuer_key, ca, start, end):
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(not ca, False, False, False, False, ca, False, False, False),
            critical=True,
        )
    )
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return builder.sign(issuer_key, hashes.SHA384())


@pytest.fixture(scope="module")
def pki():
    """A root CA and a code-signing leaf valid 2026-2027, both P-384 (as AWS Signer signs)."""
    root_key, leaf_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    start, end = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc)
    root_subject = "C=US,ST=WA,O=acme-rockets.io,CN=root"
    root = _certificate(root_subject, root_subject, root_key, root_key, True, start, end)
    leaf = _certificate(SUBJECT, root_subject, leaf_key, root_key, False, start, end)
    return leaf_key, (leaf, root)


@pytest.fixture
def store(tmp_path, pki):
    for kind in ("ca", "signingAuthority"):
        directory = tmp_path / "x509" / kind / "acme"
        directory.mkdir(parents=True)
        (directory / "root.pem").write_bytes(pki[1][1].public_bytes(serialization.Encoding.PEM))
    return TrustStore(tmp_path)


def _headers(aws: bool, signed: datetime, expiry: datetime | None):
    header = {"cty": "application/vnd.cncf.notary.payload.v1+json", "crit": ["io.cncf.notary.signingScheme"]}
    if aws:
        header["io.cncf.notary.signingScheme"] = "notary.x509.signingAuthority"
        header["io.cncf.notary.authenticSigningTime"] = signed
        header["io.cncf.notary.verificationPlugin"] = "com.amazonaws.signer.notation.plugin"
        header["com.amazonaws.signer.signingProfileVersion"] = PROFILE_VERSION
        header["com.amazonaws.signer.signingJob"] = JOB
        header["crit"] += [
            "io.cncf.notary.authenticSigningTime",
            "io.cncf.notary.verificationPlugin",
            "com.amazonaws.signer.signingProfileVersion",
            "com.amazonaws.signer.signingJob",
        ]
    else:
        header["io.cncf.notary.signingScheme"] = "notary.x509"
        header["io.cncf.notary.signingTime"] = signed
    if expiry:
        header["io.cncf.notary.expiry"] = expiry
        header["crit"].append("io.cncf.notary.expiry")
    return header


def make_jws(pki, digest=DIGEST, aws=False, signed=datetime(2026, 6, 1, tzinfo=timezone.utc), expiry=None) -> bytes:
    key, chain = pki
    header = _headers(aws, signed, expiry)
    header = {k: (v.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, datetime) else v) for k, v in header.items()}
    header["alg"] = "ES384"
    payload = json.dumps(
        {"targetArtifact": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1}}
    )
    registry = JWSRegistry(
        header_registry={name: HeaderParameter(name, lambda v: None) for name in header["crit"]},
        algorithms=["ES384"],
        strict_check_header=False,
    )
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    member = {"protected": header, "header": {"x5c": x5c}}
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )  # PEM: joserfc before 1.6 imports keys from bytes only
    signed_json = jws.serialize_json(member, payload, ECKey.import_key(pem), registry=registry)
    return json.dumps(signed_json).encode()


def make_cose(pki, digest=DIGEST, aws=False, signed=datetime(2026, 6, 1, tzinfo=timezone.utc), expiry=None) -> bytes:
    key, chain = pki
    header = _headers(aws, signed, expiry)
    protected = {1: -35, 2: header.pop("crit"), 3: header.pop("cty"), **header}
    protected_bytes = cbor2.dumps(protected, datetime_as_timestamp=True, timezone=timezone.utc)
    payload = json.dumps({"targetArtifact": {"digest": digest, "size": 1}}).encode()
    to_be_signed = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    r, s = utils.decode_dss_signature(key.sign(to_be_signed, ec.ECDSA(hashes.SHA384())))
    signature = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    x5chain = [c.public_bytes(serialization.Encoding.DER) for c in chain]
    return cbor2.dumps(cbor2.CBORTag(18, [protected_bytes, {33: x5chain}, payload, signature]))


BUILDERS = [(make_jws, JOSE), (make_cose, COSE)]


@pytest.mark.parametrize(("make", "media"), BUILDERS)
def test_own_envelopes_verify_and_fail(pki, store, make, media):
    trusted = policy(stores=("ca:acme",), identities=("x509.subject: C=US, ST=WA, O=acme-rockets.io",))
    result = verify_envelope(make(pki), media, DIGEST, REFERENCE, trusted, store, NOW)
    assert result.verified, result.reason
    assert result.identity == SUBJECT and result.signing_time == "2026-06-01T00:00:00Z"
    assert result.expires_at == datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp()
    other = replace(trusted, trusted_identities=("x509.subject: C=US, ST=WA, O=wabbit-networks.io",))
    assert not verify_envelope(make(pki), media, DIGEST, REFERENCE, other, store, NOW).verified
    mismatch = verify_envelope(make(pki, digest="sha256:" + "c" * 64), media, DIGEST, REFERENCE, trusted, store, NOW)
    assert not mismatch.verified and "which would run" in mismatch.reason


@pytest.mark.parametrize(("make", "media"), BUILDERS)
def test_each_level_enforces_or_logs(pki, store, make, media):
    expired = make(pki, expiry=datetime(2026, 7, 1, tzinfo=timezone.utc))
    later = datetime(2027, 2, 1, tzinfo=timezone.utc)  # the signature and the certificates have expired
    untrusted = ("x509.subject: C=US, ST=WA, O=someone-else",)
    outcomes = {}
    for level in ("strict", "permissive", "audit"):
        pol = policy(level, stores=("ca:acme",))
        outcomes[level] = verify_envelope(expired, media, DIGEST, REFERENCE, pol, store, later)
        outcomes[level + "-identity"] = verify_envelope(
            expired, media, DIGEST, REFERENCE, replace(pol, trusted_identities=untrusted), store, NOW
        )
    assert not outcomes["strict"].verified and "expired" in outcomes["strict"].reason
    assert outcomes["permissive"].verified
    assert [w.split(":")[0] for w in outcomes["permissive"].warnings] == ["authenticTimestamp", "expiry"]
    assert not outcomes["permissive-identity"].verified  # authenticity is enforced
    assert outcomes["audit-identity"].verified and outcomes["audit-identity"].warnings[0].startswith("authenticity:")
    skipped = verify_envelope(expired, media, "sha256:" + "f" * 64, REFERENCE, policy("skip", (), ()), store, later)
    assert skipped.verified and skipped.level == "skip" and "nothing was verified" in skipped.warnings[0]


class FakeSignerRevocation:
    """A fake of AWS Signer's GetRevocationStatus: records each query, answers what it was told."""

    def __init__(self, revoked: tuple[str, ...] = ()):
        self.revoked, self.queries = revoked, []

    def __call__(self, query: RevocationQuery) -> RevocationAnswer:
        self.queries.append(query)
        return RevocationAnswer(self.revoked)


@pytest.mark.parametrize(("make", "media"), BUILDERS)
def test_aws_signer_envelope_with_revocation(pki, store, make, media):
    envelope = make(pki, aws=True)
    pol = policy(stores=("signingAuthority:acme",), identities=(PROFILE,))
    fake = FakeSignerRevocation()
    result = verify_envelope(envelope, media, DIGEST, REFERENCE, pol, store, NOW, revocation=fake)
    assert result.verified, result.reason
    (query,) = fake.queries
    assert (query.profile_version_arn, query.job_arn) == (PROFILE_VERSION, JOB)
    assert query.platform_id == "Notation-OCI-SHA384-ECDSA"
    assert query.signing_time == datetime(2026, 6, 1, tzinfo=timezone.utc)
    leaf, root = pki[1]
    leaf_hash = hashes.Hash(hashes.SHA384())
    leaf_hash.update(leaf.tbs_certificate_bytes)
    assert query.certificate_hashes[0].startswith(leaf_hash.finalize().hex())
    assert query.certificate_hashes == aws_certificate_hashes((leaf, root)) and len(query.certificate_hashes[0]) == 192

    revoked = FakeSignerRevocation((JOB,))
    refused = verify_envelope(envelope, media, DIGEST, REFERENCE, pol, store, NOW, revocation=revoked)
    assert not refused.verified and refused.reason == f"AWS Signer revoked {JOB}."
    logged = verify_envelope(
        envelope,
        media,
        DIGEST,
        REFERENCE,
        replace(pol, level="permissive", actions=LEVELS["permissive"]),
        store,
        NOW,
        revocation=revoked,
    )
    assert logged.verified and logged.warnings == (f"revocation: AWS Signer revoked {JOB}",)
    assert not verify_envelope(envelope, media, DIGEST, REFERENCE, pol, store, NOW).verified  # no check given
    skip_revocation = replace(pol, actions={**pol.actions, "revocation": "skip"})
    never = FakeSignerRevocation((JOB,))
    assert verify_envelope(envelope, media, DIGEST, REFERENCE, skip_revocation, store, NOW, revocation=never).verified
    assert never.queries == []
    # AWS Signer identities are signing profile ARNs: another profile is not trusted, nor '*'.
    other = replace(pol, trusted_identities=(PROFILE.replace("prod", "dev"),))
    assert (
        "AWS Signer profile"
        in verify_envelope(envelope, media, DIGEST, REFERENCE, other, store, NOW, revocation=fake).reason
    )
    assert verify_envelope(
        envelope,
        media,
        DIGEST,
        REFERENCE,
        replace(pol, trusted_identities=(PROFILE_VERSION,)),
        store,
        NOW,
        revocation=fake,
    ).verified


def test_signing_authority_certificates_are_checked_at_the_authentic_signing_time(pki, store):
    # Signed in 2026 while the certificates were valid: still authentic in 2028 (AWS Signer's model).
    envelope = make_jws(pki, aws=True)
    pol = policy(stores=("signingAuthority:acme",), identities=(PROFILE,))
    later = datetime(2028, 1, 1, tzinfo=timezone.utc)
    assert verify_envelope(
        envelope, JOSE, DIGEST, REFERENCE, pol, store, later, revocation=FakeSignerRevocation()
    ).verified
    before = make_jws(pki, aws=True, signed=datetime(2025, 6, 1, tzinfo=timezone.utc))
    result = verify_envelope(before, JOSE, DIGEST, REFERENCE, pol, store, later, revocation=FakeSignerRevocation())
    assert not result.verified and "not yet valid" in result.reason


def test_unknown_critical_header_and_bad_bytes(pki, store):
    document = json.loads(make_jws(pki))
    protected = json.loads(base64.urlsafe_b64decode(document["protected"] + "=="))
    protected["crit"].append("io.example.unknown")
    protected["io.example.unknown"] = "x"
    document["protected"] = base64.urlsafe_b64encode(json.dumps(protected).encode()).rstrip(b"=").decode()
    result = verify_envelope(
        json.dumps(document).encode(), JOSE, DIGEST, REFERENCE, policy(stores=("ca:acme",)), store, NOW
    )
    assert not result.verified and "io.example.unknown" in result.reason
    garbage = verify_envelope(b"not an envelope", COSE, DIGEST, REFERENCE, policy(stores=("ca:acme",)), store, NOW)
    assert not garbage.verified and "COSE_Sign1" in garbage.reason
    assert "media type" in verify_envelope(b"{}", "text/plain", DIGEST, REFERENCE, policy(), store, NOW).reason
