"""
The image policy's scan rule: ECR's scan findings of the exact digest that will run, against the rule.

:func:`fetch_scan` reads ``DescribeImageScanFindings`` (every page; polling while the scan is
pending, up to the rule's wait) into a :class:`ScanReport`; :func:`evaluate_scan` (pure) turns a
report and a :class:`ScanRule` into the rule's :class:`~airflow_ecr.trust.outcome.RuleOutcome`.
Both scanning types are read: basic scanning (``findings``, status ``COMPLETE``) and Amazon
Inspector's enhanced scanning (``enhancedFindings``, status ``ACTIVE`` while it re-scans
continuously).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, NamedTuple

from airflow_ecr.aws_failure import AwsFailure
from airflow_ecr.exceptions import (
    EcrConfigurationError,
    EcrError,
    EcrImageNotFoundError,
)
from airflow_ecr.tokens.aws_errors import SCAN_ACTION, classify, policy_call_error
from airflow_ecr.trust.outcome import SCAN, RuleOutcome

# ECR's severities, most severe first: a rule fails at its ``fail_at`` and everything above it.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
# Inspector's UNTRIAGED is a package vulnerability its vendor has not rated yet (a fresh CVE): its
# severity is unknown, not low, so it fails at every threshold (fail closed), as does a severity
# this module does not know. Allowlist its id to run the image while the vendor rates it.
UNTRIAGED = "UNTRIAGED"
# Statuses of a scan still under way: polled up to the rule's wait.
PENDING_STATUSES = frozenset({"IN_PROGRESS", "PENDING"})
# Statuses whose answer carries findings: basic scanning's COMPLETE, enhanced scanning's ACTIVE.
FINDINGS_STATUSES = frozenset({"COMPLETE", "ACTIVE"})
UNSUPPORTED_STATUS = "UNSUPPORTED_IMAGE"
# Our status for a digest ECR has no scan of (ScanNotFoundException): treated as unavailable.
NOT_SCANNED = "NOT_SCANNED"
# What a rule does with an unsupported image or unavailable findings.
ON_CHOICES = ("fail", "pass")
# Polling a pending scan: the first wait, doubled up to the last (seconds).
FIRST_POLL_SECONDS = 2.0
MAX_POLL_SECONDS = 10.0
# Findings per DescribeImageScanFindings page: ECR's largest, so a scan costs few requests.
PAGE_SIZE = 1000
# At most this many failing ids are recorded in the facts (XCom, lineage).
MAX_FAILING_IDS = 10
# Inspector's finding statuses: a CLOSED finding was remediated and no longer applies.
_CLOSED = "CLOSED"


@dataclass(frozen=True)
class AllowedFinding:
    """
    A finding the policy lets an image run with, until its expiry.

    :param id: the finding's id: the CVE (basic ``name``, enhanced ``vulnerabilityId``); case-insensitive.
    :param expires: the last day the entry counts; from the day after, the finding fails again.
    :param reason: why it is allowed (recorded in the policy file for reviewers).
    """

    id: str
    expires: date
    reason: str


@dataclass(frozen=True)
class ScanRule:
    """
    The policy's scan rule for a scope.

    :param fail_at: the least severity that fails (see :data:`SEVERITIES`).
    :param only_fix_available: fail only on findings with a fix available (Inspector's
        ``fixAvailable`` YES or PARTIAL); a finding whose fix is unknown (basic scanning) still fails.
    :param allow: allowlisted findings.
    :param pending_wait_seconds: how long to wait for a pending scan before failing.
    :param on_unsupported: ``fail`` or ``pass`` when ECR cannot scan the image (``UNSUPPORTED_IMAGE``).
    :param on_unavailable: ``fail`` or ``pass`` when there are no findings to read (the scan failed,
        its findings are unavailable, its eligibility expired, or the digest was never scanned).
    :param refresh_seconds: how long a finished scan's outcome holds before it is read again
        (enhanced scanning re-scans continuously, and a new CVE changes the findings of an old digest).
    """

    fail_at: str = "CRITICAL"
    only_fix_available: bool = False
    allow: tuple[AllowedFinding, ...] = ()
    pending_wait_seconds: float = 0
    on_unsupported: str = "fail"
    on_unavailable: str = "fail"
    refresh_seconds: float = 3600

    def __post_init__(self) -> None:
        if self.fail_at not in SEVERITIES:
            raise EcrConfigurationError(
                f"The scan rule's fail_at {self.fail_at!r} is not a severity: use one of {', '.join(SEVERITIES)}."
            )
        for name in ("on_unsupported", "on_unavailable"):
            if getattr(self, name) not in ON_CHOICES:
                raise EcrConfigurationError(
                    f"The scan rule's {name} {getattr(self, name)!r} is not one of {', '.join(ON_CHOICES)}."
                )
        for name in ("pending_wait_seconds", "refresh_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise EcrConfigurationError(f"The scan rule's {name} must be a number of seconds >= 0, not {value!r}.")


class ScanFinding(NamedTuple):
    """One finding as the rule reads it."""

    id: str
    severity: str
    fix_available: bool | None = None
    exploit_available: bool | None = None


@dataclass(frozen=True)
class ScanReport:
    """
    What ECR says about one digest's scan. Pure data.

    :param digest: the digest the scan is of.
    :param status: ECR's scan status, or :data:`NOT_SCANNED`.
    :param description: ECR's description of the status.
    :param completed_at: when the scan completed (UTC), if it did.
    :param source: ``basic`` or ``enhanced`` (Inspector).
    :param findings: every finding, each with its id, severity and (enhanced) fix and exploit availability.
    :param counts: findings by severity (ECR's ``findingSeverityCounts``).
    :param waited_seconds: how long :func:`fetch_scan` waited for a pending scan.
    """

    digest: str
    status: str
    description: str = ""
    completed_at: datetime | None = None
    source: str = "basic"
    findings: tuple[ScanFinding, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)
    waited_seconds: float = 0.0


# -- fetching -------------------------------------------------------------------------------------
def fetch_scan(
    ecr_client: Any,
    registry_id: str,
    repository: str,
    digest: str,
    wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    *,
    page_size: int = PAGE_SIZE,
) -> tuple[ScanReport, int]:
    """
    Read the scan findings of ``digest``, waiting up to ``wait_seconds`` while the scan is pending.

    :param ecr_client: a boto3 ECR client of the registry's region.
    :param registry_id: the registry's account id.
    :param repository: the repository name.
    :param digest: the digest that will run.
    :param wait_seconds: how long to poll a pending scan (2 s, doubling to 10 s between polls).
    :param sleep: how to wait (tests pass a fake).
    :param monotonic: the clock the wait is measured on.
    :param page_size: findings asked per page.
    :return: the report and the number of requests made.
    :raises EcrCredentialsError: AWS refused the identity (e.g. no ``ecr:DescribeImageScanFindings``).
    :raises EcrImageNotFoundError: ECR has no such repository or digest.
    :raises EcrServiceError: the ECR API could not be reached or failed.
    """
    request = {
        "registryId": registry_id,
        "repositoryName": repository,
        "imageId": {"imageDigest": digest},
        "maxResults": page_size,
    }
    started = monotonic()
    delay = FIRST_POLL_SECONDS
    requests = 0
    while True:
        page = _describe(ecr_client, request, registry_id, repository, digest)
        requests += 1
        if page is None:
            return ScanReport(digest, NOT_SCANNED, waited_seconds=monotonic() - started), requests
        status = str(page.get("imageScanStatus", {}).get("status", ""))
        remaining = started + wait_seconds - monotonic()
        if status not in PENDING_STATUSES or remaining <= 0:
            break
        sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_POLL_SECONDS)
    pages = [page]
    while status not in PENDING_STATUSES and page.get("nextToken"):
        page = _describe(ecr_client, {**request, "nextToken": page["nextToken"]}, registry_id, repository, digest)
        requests += 1
        if page is None:  # the scan went away between pages: as if never scanned
            return ScanReport(digest, NOT_SCANNED, waited_seconds=monotonic() - started), requests
        pages.append(page)
    return _report(digest, pages, monotonic() - started), requests


def _describe(
    ecr_client: Any, request: dict[str, Any], registry_id: str, repository: str, digest: str
) -> dict[str, Any] | None:
    """One DescribeImageScanFindings page; None when ECR has no scan of the digest."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return dict(ecr_client.describe_image_scan_findings(**request))
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ScanNotFoundException":
            return None
        failure = classify(err, getattr(ecr_client.meta, "endpoint_url", None))
    except BotoCoreError as err:
        failure = classify(err, getattr(ecr_client.meta, "endpoint_url", None))
    raise scan_error(failure, registry_id, repository, digest)


def scan_error(failure: AwsFailure, registry_id: str, repository: str, digest: str) -> EcrError:
    """
    The error for a failed ``DescribeImageScanFindings``: one sentence naming the image, the IAM action, what to do.

    :param failure: the classified failure.
    :param registry_id: the registry's account id.
    :param repository: the repository name.
    :param digest: the digest whose findings were asked for.
    """
    image = f"{digest} in repository {repository} of registry {registry_id}"
    if failure.code in ("ImageNotFoundException", "RepositoryNotFoundException"):
        return EcrImageNotFoundError(
            f"ECR has no image {image} ({failure.code}), so the image policy cannot read its scan findings: "
            "check the image name and that the digest was pushed to this registry.",
            failure=failure,
        )
    return policy_call_error(failure, SCAN_ACTION, image, "the image policy's scan rule", "the repository")


def _flag(value: Any, yes: Iterable[str]) -> bool | None:
    if value is None:
        return None
    return str(value).upper() in yes


def _report(digest: str, pages: list[dict[str, Any]], waited: float) -> ScanReport:
    first = pages[0]
    scan_status = first.get("imageScanStatus", {})
    status = str(scan_status.get("status", ""))
    description = str(scan_status.get("description") or "")
    results = first.get("imageScanFindings") or {}
    enhanced = "enhancedFindings" in results or (status == "ACTIVE" and "findings" not in results)
    findings: list[ScanFinding] = []
    for page in pages:
        found = page.get("imageScanFindings") or {}
        for item in found.get("findings", []):
            findings.append(ScanFinding(str(item.get("name", "")), str(item.get("severity", "UNDEFINED"))))
        for item in found.get("enhancedFindings", []):
            if str(item.get("status", "")).upper() == _CLOSED:
                continue
            details = item.get("packageVulnerabilityDetails") or {}
            finding_id = details.get("vulnerabilityId") or item.get("title") or item.get("findingArn") or ""
            findings.append(
                ScanFinding(
                    str(finding_id),
                    str(item.get("severity", UNTRIAGED)),
                    # PARTIAL: some of the vulnerable packages have a fixed version (a rebuild helps).
                    _flag(item.get("fixAvailable"), ("YES", "PARTIAL")),
                    _flag(item.get("exploitAvailable"), ("YES",)),
                )
            )
    counts = results.get("findingSeverityCounts")
    if not isinstance(counts, Mapping):
        counts = Counter(f.severity for f in findings)
    completed = results.get("imageScanCompletedAt")
    if isinstance(completed, (int, float)):
        completed = datetime.fromtimestamp(completed, timezone.utc)
    return ScanReport(
        digest,
        status,
        description,
        completed if isinstance(completed, datetime) else None,
        "enhanced" if enhanced else "basic",
        tuple(findings),
        {str(k): int(v) for k, v in counts.items()},
        waited,
    )


# -- evaluating -----------------------------------------------------------------------------------
def _rank(severity: str) -> int:
    """Position in :data:`SEVERITIES`; -1 (above CRITICAL) for UNTRIAGED and any unknown severity."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def _ids(findings: Iterable[ScanFinding]) -> list[str]:
    """Unique ids, most severe first."""
    ordered = sorted(findings, key=lambda f: (_rank(f.severity), f.id))
    return list(dict.fromkeys(f.id for f in ordered))


def _listed(ids: list[str], limit: int = 3) -> str:
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def evaluate_scan(report: ScanReport, rule: ScanRule, today: date, now: float) -> RuleOutcome:
    """
    The scan rule's outcome for one digest. Pure.

    :param report: what ECR said (:func:`fetch_scan`).
    :param rule: the policy's scan rule.
    :param today: the day allowlist expiries are compared with.
    :param now: epoch seconds, for the outcome's lifetime.
    """
    completed = report.completed_at.astimezone(timezone.utc).isoformat() if report.completed_at else None
    facts: dict[str, Any] = {
        "status": report.status,
        "completed_at": completed,
        "source": report.source,
        "counts": dict(report.counts),
        "allowlisted": [],
        "failing": [],
    }
    refresh = now + rule.refresh_seconds
    digest = report.digest
    if report.status in PENDING_STATUSES:
        # Already expired: a pending answer is never reused (None would mean "for good").
        return RuleOutcome(
            SCAN,
            False,
            f"the scan of {digest} is still {report.status} after {report.waited_seconds:g} s",
            "wait for ECR to finish the scan and retry the task, or raise pending_wait_seconds in the policy's "
            "scan rule",
            facts,
            now,
        )
    described = f": {report.description}" if report.description else ""
    if report.status == UNSUPPORTED_STATUS:
        passed = rule.on_unsupported == "pass"
        return RuleOutcome(
            SCAN,
            passed,
            f"ECR cannot scan {digest} (UNSUPPORTED_IMAGE{described})"
            + (", which the scan rule lets run" if passed else ""),
            ""
            if passed
            else "build on a base image ECR scanning supports, or set on_unsupported to pass in the policy's scan rule",
            facts,
            refresh,
        )
    if report.status not in FINDINGS_STATUSES:
        passed = rule.on_unavailable == "pass"
        what = (
            f"ECR has no scan of {digest}"
            if report.status == NOT_SCANNED
            else f"the scan findings of {digest} are unavailable ({report.status}{described})"
        )
        return RuleOutcome(
            SCAN,
            passed,
            what + (", which the scan rule lets run" if passed else ""),
            ""
            if passed
            else "scan the image (scan on push, or aws ecr start-image-scan) and retry, or set "
            "on_unavailable to pass in the policy's scan rule",
            facts,
            refresh,
        )
    return _evaluate_findings(report, rule, today, facts, refresh)


def _evaluate_findings(
    report: ScanReport, rule: ScanRule, today: date, facts: dict[str, Any], expires_at: float
) -> RuleOutcome:
    threshold = SEVERITIES.index(rule.fail_at)
    live = {a.id.casefold() for a in rule.allow if a.expires >= today}
    expired = {a.id.casefold(): a for a in rule.allow if a.expires < today}
    matching = [
        f
        for f in report.findings
        if _rank(f.severity) <= threshold and not (rule.only_fix_available and f.fix_available is False)
    ]
    allowlisted = _ids(f for f in matching if f.id.casefold() in live)
    failing = _ids(f for f in matching if f.id.casefold() not in live)
    expired_hit = [i for i in failing if i.casefold() in expired]
    facts["allowlisted"] = allowlisted
    facts["failing"] = failing[:MAX_FAILING_IDS]
    scope = f"at or above {rule.fail_at}" + (" with a fix available" if rule.only_fix_available else "")
    if not failing:
        also = f" ({len(allowlisted)} allowlisted: {_listed(allowlisted)})" if allowlisted else ""
        return RuleOutcome(SCAN, True, f"no findings {scope} in {report.digest}{also}", "", facts, expires_at)
    untriaged = (
        " (UNTRIAGED ones fail at any threshold)"
        if any(f.severity not in SEVERITIES for f in matching if f.id in failing)
        else ""
    )
    lapsed = ""
    if expired_hit:
        dates = sorted({expired[i.casefold()].expires.isoformat() for i in expired_hit})
        lapsed = f"; the allowlist entries for {_listed(expired_hit)} expired on {', '.join(dates)}"
    summary = f"{len(failing)} finding(s) {scope} in {report.digest}: {_listed(failing)}{untriaged}{lapsed}"
    fix = (
        "rebuild on a patched base image, or allowlist the ids in the policy file with an expiry and a reason"
        if not expired_hit
        else "rebuild on a patched base image, or renew the expired allowlist entries with a new expiry and reason"
    )
    return RuleOutcome(SCAN, False, summary, fix, facts, expires_at)
