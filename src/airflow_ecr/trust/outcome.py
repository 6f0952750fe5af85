"""
What the image policy found for one digest, as data: each rule's outcome and the verdict. Pure.

Every check (:mod:`~airflow_ecr.trust.scan`, :mod:`~airflow_ecr.trust.notation`,
:mod:`~airflow_ecr.trust.cosign`) answers in these types; the task's refusal sentence, the
``ecr_image`` XCom, the OpenLineage facet, doctor's table and the verdict cache all read them, never
a message's text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCAN = "scan"
SIGNATURE = "signature"


@dataclass(frozen=True)
class SignatureResult:
    """
    One signature's verification, in either format.

    :param format: ``notation`` or ``cosign``.
    :param verified: whether it proves what the rule asks (integrity, a trusted identity, in time).
    :param identity: who signed: the signing certificate's subject (Notation) or the key that
        verified it (cosign: its path, ``awskms:///`` URI or fingerprint); None when unknown.
    :param signing_time: when it was signed, ISO 8601 UTC, if the envelope says.
    :param reason: why it is not verified (one sentence), else empty.
    :param level: the Notation verification level applied (``strict``, ``permissive``, ``audit``).
    :param warnings: checks that failed but that the level only logs (permissive, audit).
    :param expires_at: epoch seconds after which the result must be checked again (a revocation
        answer's lifetime, a certificate's expiry); None: bound to the immutable digest.
    """

    format: str
    verified: bool
    identity: str | None = None
    signing_time: str | None = None
    reason: str = ""
    level: str | None = None
    warnings: tuple[str, ...] = ()
    expires_at: float | None = None

    def as_facts(self) -> dict[str, Any]:
        """What the XCom and the lineage facet carry."""
        return {
            "format": self.format,
            "verified": self.verified,
            "identity": self.identity,
            "signing_time": self.signing_time,
            "level": self.level,
        }


@dataclass(frozen=True)
class RuleOutcome:
    """
    One rule's answer for one digest.

    :param rule: :data:`SCAN` or :data:`SIGNATURE`.
    :param passed: whether the image may run as far as this rule goes.
    :param summary: what was found, one sentence (``2 CRITICAL findings: CVE-…``, ``signed by …``).
    :param fix: what to do when it did not pass (one sentence), else empty.
    :param facts: JSON-serialisable facts recorded in XCom and lineage (the scan summary, the
        signature outcome).
    :param expires_at: epoch seconds after which the outcome must be checked again (a pending scan,
        a scan's refresh, a revocation answer); None: it holds for the digest for good.
    """

    rule: str
    passed: bool
    summary: str
    fix: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)
    expires_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "passed": self.passed,
            "summary": self.summary,
            "fix": self.fix,
            "facts": dict(self.facts),
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleOutcome:
        return cls(
            str(data["rule"]),
            bool(data["passed"]),
            str(data["summary"]),
            str(data.get("fix", "")),
            dict(data.get("facts") or {}),
            data.get("expires_at"),
        )


@dataclass(frozen=True)
class Verdict:
    """
    The image policy's answer for one digest: every rule's outcome.

    :param image: the image as the task named it.
    :param digest: the digest checked, which is the digest that runs.
    :param scope: the policy rule's name that applied.
    :param outcomes: each rule's outcome, in the policy's order (scan, then signature).
    :param cached: whether it came from the host's verdict cache (no request made).
    """

    image: str
    digest: str
    scope: str
    outcomes: tuple[RuleOutcome, ...]
    cached: bool = False

    @property
    def passed(self) -> bool:
        return all(outcome.passed for outcome in self.outcomes)

    @property
    def expires_at(self) -> float | None:
        """When the verdict must be checked again: its earliest-expiring outcome."""
        times = [o.expires_at for o in self.outcomes if o.expires_at is not None]
        return min(times) if times else None

    def outcome(self, rule: str) -> RuleOutcome | None:
        return next((o for o in self.outcomes if o.rule == rule), None)

    def refusal(self) -> str:
        """The task's one sentence when the verdict refuses: image, digest, the rule that failed, what to do."""
        failed = [o for o in self.outcomes if not o.passed]
        if not failed:
            return ""
        first = failed[0]
        also = f" (the {', '.join(o.rule for o in failed[1:])} rule failed too)" if len(failed) > 1 else ""
        fix = f": {first.fix}" if first.fix else ""
        return (
            f"Image policy {self.scope!r} refused {self.image} ({self.digest}): its {first.rule} rule failed, "
            f"{first.summary.rstrip('.')}{also}{fix}"
        )

    def as_record(self) -> dict[str, Any]:
        """The ``policy`` entry of the ``ecr_image`` XCom and the lineage facet (JSON-serialisable)."""
        record: dict[str, Any] = {"scope": self.scope, "passed": self.passed, "cached": self.cached}
        for outcome in self.outcomes:
            record[outcome.rule] = {"passed": outcome.passed, **dict(outcome.facts)}
        return record
