"""
Notation signatures, as the Notary Project specification defines them: the trust policy
(``trustpolicy.json``), the X.509 trust store, and JWS and COSE envelopes verified against them.
Pure: bytes and files in, a :class:`~airflow_ecr.trust.outcome.SignatureResult` out.

AWS Signer signs in this format (signing scheme ``notary.x509.signingAuthority``); its revocation
check is the caller's :data:`RevocationCheck` (``signer:GetRevocationStatus``): nothing here calls AWS.
Not done: RFC 3161 timestamp countersignatures (ignored: they only ever extend a certificate's
validity) and OCSP/CRL revocation of CA-signed (``notary.x509``) signatures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.trust import x509_chain
from airflow_ecr.trust.envelopes import (
    AWS_PROFILE_VERSION,
    AWS_SIGNING_JOB,
    NOTATION_ARTIFACT_TYPE,
    SCHEME_STORE_KIND,
    Envelope,
    envelope_media_types,
    parse_envelope,
)
from airflow_ecr.trust.outcome import SignatureResult
from airflow_ecr.trust.x509_chain import TrustStore

__all__ = [
    "NOTATION_ARTIFACT_TYPE",
    "RevocationAnswer",
    "RevocationQuery",
    "TrustPolicy",
    "TrustPolicyDocument",
    "TrustStore",
    "envelope_media_types",
    "load_trust_policy",
    "verify_envelope",
]

# aws-signer-notation-plugin internal/verifier/verifier.go: the platform every Notation job signs on.
AWS_SIGNER_PLATFORM = "Notation-OCI-SHA384-ECDSA"

INTEGRITY, AUTHENTICITY, AUTHENTIC_TIMESTAMP, EXPIRY, REVOCATION = (
    "integrity",
    "authenticity",
    "authenticTimestamp",
    "expiry",
    "revocation",
)
CHECKS = (INTEGRITY, AUTHENTICITY, AUTHENTIC_TIMESTAMP, EXPIRY, REVOCATION)
ENFORCE, LOG, SKIP = "enforce", "log", "skip"
# notation-go verifier/trustpolicy/trustpolicy.go: each level's action for each check.
LEVELS: Mapping[str, Mapping[str, str]] = {
    "strict": dict.fromkeys(CHECKS, ENFORCE),
    "permissive": {INTEGRITY: ENFORCE, AUTHENTICITY: ENFORCE, AUTHENTIC_TIMESTAMP: LOG, EXPIRY: LOG, REVOCATION: LOG},
    "audit": {INTEGRITY: ENFORCE, AUTHENTICITY: LOG, AUTHENTIC_TIMESTAMP: LOG, EXPIRY: LOG, REVOCATION: LOG},
    "skip": dict.fromkeys(CHECKS, SKIP),
}
_DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?$"
)
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-*)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-*)[a-z0-9]+)*)*$")
_AWS_PROFILE_ARN = re.compile(r"^arn:aws[a-z-]*:signer:[^:]*:[^:]*:/signing-profiles/[^/]+(/[^/]+)?$")


@dataclass(frozen=True)
class TrustPolicy:
    """
    One statement of ``trustpolicy.json``.

    :param name: the statement's name.
    :param registry_scopes: ``registry/repository`` values, or ``("*",)``.
    :param level: ``strict``, ``permissive``, ``audit`` or ``skip``.
    :param actions: each check's action (``enforce``, ``log``, ``skip``) after the level's overrides.
    :param trust_stores: ``kind:name`` values (``ca:acme``, ``signingAuthority:aws-signer``).
    :param trusted_identities: ``*``, ``x509.subject: …`` values, or AWS Signer signing profile ARNs.
    """

    name: str
    registry_scopes: tuple[str, ...]
    level: str
    actions: Mapping[str, str]
    trust_stores: tuple[str, ...] = ()
    trusted_identities: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrustPolicyDocument:
    """
    A whole ``trustpolicy.json``.

    :param path: the file it was read from.
    :param policies: its statements, in order.
    """

    path: Path
    policies: tuple[TrustPolicy, ...]

    def policy_for(self, reference: str) -> TrustPolicy | None:
        """
        The statement that applies to an artifact: the one scoping its ``registry/repository``, else the
        ``*`` one, else None.

        :param reference: ``host/repository`` (a tag or digest after it is ignored).
        """
        repository = reference.split("@", 1)[0]
        last = repository.rsplit("/", 1)
        if len(last) == 2 and ":" in last[1]:
            repository = f"{last[0]}/{last[1].split(':', 1)[0]}"
        exact = next((p for p in self.policies if repository in p.registry_scopes), None)
        return exact or next((p for p in self.policies if p.registry_scopes == ("*",)), None)


@dataclass(frozen=True)
class RevocationQuery:
    """
    What AWS Signer's ``GetRevocationStatus`` takes for one signature.

    :param profile_version_arn: the signing profile version (``profileVersionArn``).
    :param job_arn: the signing job (``jobArn``).
    :param signing_time: the authentic signing time (``signatureTimestamp``).
    :param certificate_hashes: ``certificateHashes`` as the AWS Signer plugin sends them: for each
        certificate, leaf first, the hex SHA-384 of its TBS certificate followed by its issuer's (the
        root's twice).
    :param platform_id: ``platformId``, :data:`AWS_SIGNER_PLATFORM`.
    """

    profile_version_arn: str
    job_arn: str
    signing_time: datetime
    certificate_hashes: tuple[str, ...]
    platform_id: str = AWS_SIGNER_PLATFORM


@dataclass(frozen=True)
class RevocationAnswer:
    """
    ``GetRevocationStatus``'s answer.

    :param revoked_entities: the ARNs (profile, profile version, job) and certificate hashes revoked.
    """

    revoked_entities: tuple[str, ...] = ()


RevocationCheck = Callable[[RevocationQuery], RevocationAnswer]


def load_trust_policy(path: Path) -> TrustPolicyDocument:
    """
    Read and validate a Notation ``trustpolicy.json`` as Notation does.

    :param path: the file.
    :raises EcrConfigurationError: one sentence naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise EcrConfigurationError(f"Notation trust policy {path} cannot be read: {err.strerror}.") from None
    except ValueError:
        raise EcrConfigurationError(f"Notation trust policy {path} is not valid JSON.") from None
    try:
        return TrustPolicyDocument(path, _policies(document))
    except ValueError as err:
        raise EcrConfigurationError(f"Notation trust policy {path}: {err}.") from None


def _policies(document: Any) -> tuple[TrustPolicy, ...]:
    if not isinstance(document, dict):
        raise ValueError("the document must be a JSON object")
    if document.get("version") != "1.0":
        raise ValueError(f'version must be "1.0", not {document.get("version")!r}')
    statements = document.get("trustPolicies")
    if not isinstance(statements, list) or not statements:
        raise ValueError("trustPolicies must list at least one statement")
    policies = tuple(_policy(statement) for statement in statements)
    names: set[str] = set()
    scopes: set[str] = set()
    for policy in policies:
        if policy.name in names:
            raise ValueError(f"the statement name {policy.name!r} is used twice, names must be unique")
        names.add(policy.name)
        for scope in policy.registry_scopes:
            if scope in scopes:
                raise ValueError(f"registry scope {scope!r} is in several statements, it may be in one only")
            scopes.add(scope)
    return policies


def _policy(statement: Any) -> TrustPolicy:
    if not isinstance(statement, dict) or not isinstance(statement.get("name"), str) or not statement["name"]:
        raise ValueError("a statement is missing its name")
    name = statement["name"]
    scopes = _strings(statement.get("registryScopes"), f"statement {name!r} registryScopes")
    if not scopes:
        raise ValueError(f"statement {name!r} has no registryScopes")
    if "*" in scopes and len(scopes) > 1:
        raise ValueError(f"statement {name!r} uses the '*' scope with other scopes, '*' must stand alone")
    for scope in scopes:
        _check_scope(name, scope)
    level, actions = _verification(name, statement.get("signatureVerification"))
    stores = _strings(statement.get("trustStores", []), f"statement {name!r} trustStores")
    identities = _strings(statement.get("trustedIdentities", []), f"statement {name!r} trustedIdentities")
    if level == "skip":
        if stores or identities:
            raise ValueError(f"statement {name!r} skips verification but names trust stores or identities")
    elif not stores or not identities:
        raise ValueError(f"statement {name!r} must name both trustStores and trustedIdentities")
    for store in stores:
        kind, _, store_name = store.partition(":")
        if kind not in x509_chain.STORE_KINDS or not x509_chain.STORE_NAME.match(store_name):
            raise ValueError(f"statement {name!r} has trust store {store!r}, not ca|signingAuthority|tsa:NAME")
    _check_identities(name, identities)
    return TrustPolicy(name, scopes, level, actions, stores, identities)


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(value)


def _check_scope(name: str, scope: str) -> None:
    if scope == "*":
        return
    domain, _, repository = scope.partition("/")
    if "*" in scope or not _DOMAIN.match(domain) or not _REPOSITORY.match(repository):
        raise ValueError(f"statement {name!r} has registry scope {scope!r}, not a registry/repository")


def _verification(name: str, verification: Any) -> tuple[str, Mapping[str, str]]:
    if not isinstance(verification, dict) or verification.get("level") not in LEVELS:
        raise ValueError(f"statement {name!r} signatureVerification.level must be one of {', '.join(LEVELS)}")
    level = verification["level"]
    actions = dict(LEVELS[level])
    override = verification.get("override") or {}
    if override and level == "skip":
        raise ValueError(f"statement {name!r} cannot override the skip level")
    if not isinstance(override, dict):
        raise ValueError(f"statement {name!r} signatureVerification.override must be an object")
    for check, action in override.items():
        if check not in CHECKS or action not in (ENFORCE, LOG, SKIP):
            raise ValueError(f"statement {name!r} overrides {check!r} with {action!r}, which Notation does not know")
        if check == INTEGRITY:
            raise ValueError(f"statement {name!r} overrides integrity, which cannot be overridden")
        if action == SKIP and check != REVOCATION:
            raise ValueError(f"statement {name!r} skips {check}, which only revocation may")
        actions[check] = action
    if verification.get("verifyTimestamp", "always") not in ("always", "afterCertExpiry"):
        raise ValueError(f"statement {name!r} verifyTimestamp must be always or afterCertExpiry")
    return level, actions


def _check_identities(name: str, identities: tuple[str, ...]) -> None:
    if "*" in identities and len(identities) > 1:
        raise ValueError(f"statement {name!r} uses the '*' identity with others, '*' must stand alone")
    parsed: list[tuple[str, dict[str, str]]] = []
    for identity in identities:
        if identity == "*" or _AWS_PROFILE_ARN.match(identity):
            continue
        prefix, found, value = identity.partition(":")
        if not found or not value.strip():
            raise ValueError(f"statement {name!r} has trusted identity {identity!r}, not x509.subject: DN")
        if prefix.strip() == "x509.subject":
            try:
                parsed.append((identity, x509_chain.parse_distinguished_name(value.strip())))
            except ValueError as err:
                raise ValueError(f"statement {name!r} has a bad trusted identity: {err}") from None
    for first, first_dn in parsed:
        for second, second_dn in parsed:
            if first is not second and x509_chain.identity_matches(first_dn, second_dn):
                raise ValueError(f"statement {name!r} has overlapping identities {first!r} and {second!r}")


class _Findings:
    """Each failed check's sentence, sorted by the policy's action into refusals and warnings."""

    def __init__(self, actions: Mapping[str, str]) -> None:
        self.actions = actions
        self.refusals: list[str] = []
        self.warnings: list[str] = []

    def runs(self, check: str) -> bool:
        return self.actions.get(check, ENFORCE) != SKIP

    def add(self, check: str, problem: str | None) -> None:
        if not problem:
            return
        if self.actions.get(check, ENFORCE) == ENFORCE:
            self.refusals.append(problem)
        elif self.actions[check] == LOG:
            self.warnings.append(f"{check}: {problem}")


def verify_envelope(
    envelope: bytes,
    media_type: str,
    artifact_digest: str,
    artifact_reference: str,
    policy: TrustPolicy,
    store: TrustStore,
    now: datetime,
    revocation: RevocationCheck | None = None,
) -> SignatureResult:
    """
    Verify one Notation signature envelope of the artifact that will run.

    :param envelope: the envelope's bytes (the signature manifest's layer).
    :param media_type: ``application/jose+json`` or ``application/cose``.
    :param artifact_digest: the digest that will run; the envelope must sign exactly it.
    :param artifact_reference: the image as the task names it, for the sentences.
    :param policy: the trust policy statement that applies (:meth:`TrustPolicyDocument.policy_for`).
    :param store: the trust store.
    :param now: the time of verification (timezone-aware).
    :param revocation: AWS Signer's revocation check, called for AWS Signer envelopes only.
    :raises EcrConfigurationError: the policy names a trust store that does not exist.
    """
    if policy.level == "skip":
        note = f"trust policy {policy.name!r} skips signature verification: nothing was verified"
        return SignatureResult("notation", True, level="skip", warnings=(note,))
    findings = _Findings(policy.actions)
    try:
        parsed = parse_envelope(envelope, media_type)
    except ValueError as err:
        return SignatureResult("notation", False, reason=f"{_sentence(str(err))}", level=policy.level)
    findings.add(INTEGRITY, parsed.problem or _digest_problem(parsed, artifact_digest, artifact_reference))
    if not parsed.problem:
        _authenticity(parsed, policy, store, findings)
        _timestamp(parsed, now, findings)
        _revocation(parsed, revocation, findings)
    identity = parsed.chain[0].subject.rfc4514_string() if parsed.chain else None
    return SignatureResult(
        "notation",
        not findings.refusals,
        identity=identity,
        signing_time=_iso(parsed.signing_time),
        reason=_sentence(findings.refusals[0]) if findings.refusals else "",
        level=policy.level,
        warnings=tuple(findings.warnings),
        expires_at=_expires_at(parsed),
    )


def _digest_problem(parsed: Envelope, digest: str, reference: str) -> str | None:
    if parsed.target_digest == digest:
        return None
    return f"the signature is for {parsed.target_digest}, not {digest} which would run ({reference})"


def _authenticity(parsed: Envelope, policy: TrustPolicy, store: TrustStore, findings: _Findings) -> None:
    if not findings.runs(AUTHENTICITY):
        return
    kind = SCHEME_STORE_KIND[parsed.signing_scheme]
    names = [s.partition(":")[2] for s in policy.trust_stores if s.partition(":")[0] == kind]
    spelled = ", ".join(f"'{kind}:{name}'" for name in names) or f"of kind {kind}"
    trusted = [cert for name in names for cert in store.certificates(kind, name)]
    problem = x509_chain.chain_problem(parsed.chain, trusted, spelled)
    findings.add(AUTHENTICITY, problem or _identity_problem(parsed, policy))


def _identity_problem(parsed: Envelope, policy: TrustPolicy) -> str | None:
    leaf = parsed.chain[0].subject.rfc4514_string()
    if parsed.is_aws_signer:
        # As the AWS Signer plugin: identities are signing profile (version) ARNs, never '*'.
        profile = str(parsed.attributes.get(AWS_PROFILE_VERSION, ""))
        for identity in policy.trusted_identities:
            match = _AWS_PROFILE_ARN.match(identity)
            # A profile ARN trusts each of its versions; a profile version ARN only itself.
            signed_by = profile if match and match.group(1) else profile.rsplit("/", 1)[0]
            if match and signed_by.lower() == identity.lower():
                return None
        return f"signed by AWS Signer profile {profile or 'unknown'}, which trust policy {policy.name!r} does not trust"
    if "*" in policy.trusted_identities:
        return None
    subject = x509_chain.subject_attributes(parsed.chain[0])
    for identity in policy.trusted_identities:
        prefix, _, value = identity.partition(":")
        trusted = x509_chain.parse_distinguished_name(value.strip()) if prefix.strip() == "x509.subject" else None
        if trusted and x509_chain.identity_matches(trusted, subject):
            return None
    return f"signed by {leaf}, which trust policy {policy.name!r} does not trust"


def _timestamp(parsed: Envelope, now: datetime, findings: _Findings) -> None:
    if findings.runs(AUTHENTIC_TIMESTAMP):
        # Only a signing authority's signing time is authentic; without a verified timestamp
        # countersignature a CA-signed chain must be valid now (the specification's rule).
        if parsed.signing_scheme == "notary.x509.signingAuthority" and parsed.signing_time:
            at, when = parsed.signing_time, f"its authentic signing time {_iso(parsed.signing_time)}"
        else:
            at, when = now, f"now ({_iso(now)})"
        findings.add(AUTHENTIC_TIMESTAMP, x509_chain.validity_problem(parsed.chain, at, when))
    if findings.runs(EXPIRY) and parsed.expiry and now > parsed.expiry:
        findings.add(EXPIRY, f"the signature expired on {_iso(parsed.expiry)}")


def _revocation(parsed: Envelope, revocation: RevocationCheck | None, findings: _Findings) -> None:
    if not parsed.is_aws_signer or not findings.runs(REVOCATION):
        return
    if revocation is None:
        findings.add(REVOCATION, "no AWS Signer revocation check was available (signer:GetRevocationStatus)")
        return
    query = RevocationQuery(
        str(parsed.attributes.get(AWS_PROFILE_VERSION, "")),
        str(parsed.attributes.get(AWS_SIGNING_JOB, "")),
        parsed.signing_time or datetime.now(timezone.utc),
        aws_certificate_hashes(parsed.chain),
    )
    try:
        answer = revocation(query)
    except Exception as err:  # the caller's AWS call: failing closed is the plugin's rule too
        findings.add(REVOCATION, f"AWS Signer's revocation check failed ({type(err).__name__})")
        return
    arns = [entity for entity in answer.revoked_entities if entity.startswith("arn")]
    if arns:
        findings.add(REVOCATION, f"AWS Signer revoked {', '.join(arns)}")
    elif answer.revoked_entities:
        findings.add(REVOCATION, "AWS Signer revoked a certificate of the signature's chain")


def aws_certificate_hashes(chain: Any) -> tuple[str, ...]:
    """
    ``certificateHashes`` exactly as aws-signer-notation-plugin computes them: for each certificate,
    leaf first, hex SHA-384 of its TBS certificate followed by that of the next (the last one twice).

    :param chain: the certificates, leaf first.
    """
    from cryptography.hazmat.primitives import hashes

    def tbs_hash(cert: Any) -> str:
        digest = hashes.Hash(hashes.SHA384())
        digest.update(cert.tbs_certificate_bytes)
        return digest.finalize().hex()

    own = [tbs_hash(cert) for cert in chain]
    return tuple(own[i] + own[min(i + 1, len(own) - 1)] for i in range(len(own)))


def _expires_at(parsed: Envelope) -> float | None:
    times = [cert.not_valid_after_utc.timestamp() for cert in parsed.chain]
    if parsed.expiry:
        times.append(parsed.expiry.timestamp())
    return min(times) if times else None


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sentence(problem: str) -> str:
    text = problem[:1].upper() + problem[1:]
    return text if text.endswith(".") else f"{text}."
