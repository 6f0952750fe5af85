"""
The image policy's one entry point: every rule of the effective policy checked on the digest that
will run, answered as a :class:`~airflow_ecr.trust.outcome.Verdict`.

What the checks need from outside (scan findings, the signatures attached to the digest, a KMS
public key, AWS Signer's revocation answer) comes through :class:`PolicyIO`, which the hook
implements (:mod:`airflow_ecr.hooks.policy_io`); everything here decides on data.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from airflow_ecr.trust.outcome import SIGNATURE, RuleOutcome, SignatureResult, Verdict

if TYPE_CHECKING:
    from airflow_ecr.registry import ImageReference
    from airflow_ecr.trust.notation import RevocationAnswer, RevocationQuery
    from airflow_ecr.trust.policy import ImageRule, SignatureRule
    from airflow_ecr.trust.referrers import SignatureArtifact
    from airflow_ecr.trust.scan import ScanReport


class PolicyIO(Protocol):
    """What checking a digest asks of AWS and of the registry (the hook's ``HookPolicyIO``)."""

    def scan_report(self, name: ImageReference, digest: str, wait_seconds: float) -> ScanReport:
        """The digest's ECR scan findings, waiting up to ``wait_seconds`` while the scan is pending."""

    def signatures(self, name: ImageReference, digest: str, artifact_types: Collection[str]) -> list[SignatureArtifact]:
        """The signatures attached to the digest (the OCI referrers API, or its tag-schema fallback)."""

    def kms_public_key(self, key_id: str) -> bytes:
        """The DER public key of an AWS KMS key (``kms:GetPublicKey``)."""

    def revocation(self, query: RevocationQuery) -> RevocationAnswer:
        """AWS Signer's revocation answer for a signature (``signer:GetRevocationStatus``)."""


def check_digest(
    rule: ImageRule, image: str, name: ImageReference, digest: str, io: PolicyIO, now: datetime
) -> Verdict:
    """
    Every rule of ``rule`` on ``digest``: the scan rule, then the signature rule.

    :param rule: the effective rule (the deployment's, tightened by the DAG).
    :param image: the image as the task named it (for the sentences).
    :param name: the image where it is checked (its host and repository).
    :param digest: the manifest digest that will run.
    :param io: where findings, signatures, keys and revocation answers come from.
    :param now: the time of the check (timezone-aware, UTC).
    """
    from airflow_ecr.trust.scan import evaluate_scan

    outcomes: list[RuleOutcome] = []
    if rule.scan is not None:
        report = io.scan_report(name, digest, rule.scan.pending_wait_seconds)
        outcomes.append(evaluate_scan(report, rule.scan, now.date(), now.timestamp()))
    if rule.signature is not None:
        outcomes.append(check_signatures(rule.signature, name, digest, io, now))
    return Verdict(image, digest, rule.name, tuple(outcomes))


def check_signatures(
    rule: SignatureRule, name: ImageReference, digest: str, io: PolicyIO, now: datetime
) -> RuleOutcome:
    """
    The signature rule: one signature of ``digest``, in a format the rule configures, that verifies.

    :param rule: the signature rule (Notation's trust policy and store, cosign keys).
    :param name: the image (its host and repository: Notation's registry scope).
    :param digest: the manifest digest that will run: what the signature must be for.
    :param io: where signatures, KMS keys and revocation answers come from.
    :param now: the time of the check.
    """
    from airflow_ecr.trust import cosign, notation

    reference = f"{name.host}/{name.repository}"
    trust_policy = None
    types: set[str] = set()
    if rule.notation_trust_policy is not None:
        document = notation.load_trust_policy(rule.notation_trust_policy)
        trust_policy = document.policy_for(reference)
        if trust_policy is not None and trust_policy.level == "skip":
            return RuleOutcome(
                SIGNATURE, True, f"Notation trust policy {trust_policy.name!r} skips verification for {reference}",
                facts={"format": "notation", "verified": False, "level": "skip"},
            )  # fmt: skip
        types.add(notation.NOTATION_ARTIFACT_TYPE)
    keys = [cosign.load_cosign_key(spec, io.kms_public_key) for spec in rule.cosign_keys]
    if keys:
        types.add(cosign.ARTIFACT_TYPE)
    artifacts = io.signatures(name, digest, types)
    results: list[SignatureResult] = []
    for artifact in artifacts:
        if artifact.format == "notation" and rule.notation_trust_policy is not None:
            if trust_policy is None:
                results.append(
                    SignatureResult(
                        "notation", False, reason=f"no policy of the Notation trust policy covers {reference}"
                    )
                )
                continue
            # The policy file gives a trust store with every trust policy (trust/policy.py).
            store = notation.TrustStore(rule.notation_trust_store or Path())
            results.append(
                notation.verify_envelope(
                    artifact.blob, artifact.media_type, digest, reference, trust_policy, store, now, io.revocation
                )
            )
        elif artifact.format == "cosign" and keys and artifact.signature_b64 is not None:
            results.append(cosign.verify_cosign(artifact.blob, artifact.signature_b64, digest, keys, reference))
    verified = next((result for result in results if result.verified), None)
    if verified is not None:
        when = f" at {verified.signing_time}" if verified.signing_time else ""
        return RuleOutcome(
            SIGNATURE,
            True,
            f"signed by {verified.identity} ({verified.format}){when}",
            facts={**verified.as_facts(), "found": len(artifacts)},
            expires_at=verified.expires_at,
        )
    formats = " or ".join(sorted(f for f in ("notation", "cosign") if _configured(rule, f)))
    fix = (
        f"sign {digest} with a trusted identity ({formats}) and push the signature to its repository, "
        "or run a signed image"
    )
    facts = {"format": None, "verified": False, "found": len(artifacts)}
    if not results:
        return RuleOutcome(SIGNATURE, False, f"no {formats} signature of it was found in {name.host}", fix, facts)
    reasons = "; ".join(dict.fromkeys(result.reason for result in results if result.reason))
    found = f"{len(results)} signature{'s' if len(results) > 1 else ''} found, none verified: {reasons}"
    return RuleOutcome(SIGNATURE, False, found, fix, {**facts, "format": results[0].format})


def _configured(rule: SignatureRule, format: str) -> bool:
    return rule.notation_trust_policy is not None if format == "notation" else bool(rule.cosign_keys)
