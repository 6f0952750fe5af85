"""ECR image scans as the emulator keeps and answers them: ``DescribeImageScanFindings`` (AWS JSON 1.1).

A test sets one scan record per image (account, region, repository, digest) through the admin API
(``POST /_emulator/scans``): its status, its findings in ECR's own wire shape (basic ``findings`` or
Inspector ``enhancedFindings``), and optionally a pending phase (``IN_PROGRESS`` for N seconds, or
for the next N answers) after which the record's own status is answered. What ECR answers for
images it does not know is modelled from the records: a repository no record names is
``RepositoryNotFoundException``, a digest or tag no record of a known repository has is
``ImageNotFoundException``, and an image recorded with status None (pushed, never scanned) is
``ScanNotFoundException``.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from airflow_ecr.testing.emulator.model import EmulatorError

# ECR's DescribeImageScanFindings statuses (botocore's ScanStatus enum).
SCAN_STATUSES = frozenset(
    {
        "IN_PROGRESS",
        "COMPLETE",
        "FAILED",
        "UNSUPPORTED_IMAGE",
        "ACTIVE",
        "PENDING",
        "SCAN_ELIGIBILITY_EXPIRED",
        "FINDINGS_UNAVAILABLE",
        "LIMIT_EXCEEDED",
        "IMAGE_ARCHIVED",
        "IMAGE_SIZE_EXCEEDED",
    }
)
# Statuses whose answer carries findings: a basic scan's COMPLETE, continuous (enhanced) scanning's ACTIVE.
FINDINGS_STATUSES = frozenset({"COMPLETE", "ACTIVE"})
# The admin API's scan fields (:func:`record_from_request`).
SCAN_FIELDS = frozenset(
    {
        "status",
        "description",
        "findings",
        "enhanced_findings",
        "tags",
        "pending_status",
        "pending_seconds",
        "pending_answers",
        "completed_at",
        "source_updated_at",
        "counts",
    }
)
# ECR's default page when the request gives no maxResults, and its largest.
DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass
class ScanRecord:
    """
    One image's scan, as set by a test.

    :param status: the status answered once any pending phase is over; None: the image exists but
        was never scanned (``ScanNotFoundException``).
    :param description: ``imageScanStatus.description``.
    :param findings: basic findings in ECR's shape ({name, description, uri, severity, attributes}).
    :param enhanced_findings: Inspector findings in ECR's shape; not None makes the scan enhanced.
    :param tags: tags that name the image too (``imageId.imageTag``).
    :param pending_status: what is answered while pending (``IN_PROGRESS`` or ``PENDING``).
    :param pending_until: epoch seconds until which ``pending_status`` is answered.
    :param pending_answers: how many more answers say ``pending_status`` (counted down per answer).
    :param completed_at: ``imageScanCompletedAt`` (epoch seconds); default when the pending phase ends.
    :param source_updated_at: ``vulnerabilitySourceUpdatedAt`` (epoch seconds); default ``completed_at``.
    :param counts: ``findingSeverityCounts``; default counted from the findings, as ECR does.
    """

    status: str | None
    description: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    enhanced_findings: list[dict[str, Any]] | None = None
    tags: list[str] = field(default_factory=list)
    pending_status: str = "IN_PROGRESS"
    pending_until: float = 0.0
    pending_answers: int = 0
    completed_at: float | None = None
    source_updated_at: float | None = None
    counts: dict[str, int] | None = None

    def current_status(self, now: float) -> str | None:
        """The status answered at ``now`` (without counting the answer)."""
        if self.status is not None and (self.pending_answers > 0 or now < self.pending_until):
            return self.pending_status
        return self.status


def _check_status(value: Any, name: str, allowed: frozenset[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, not {value!r}")
    return str(value)


def _check_findings(value: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(f, dict) for f in value):
        raise ValueError(f"{name} must be a list of findings (JSON objects in ECR's shape)")
    return [dict(f) for f in value]


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, not {value!r}")
    return float(value)


def record_from_request(request: dict[str, Any], now: float) -> ScanRecord:
    """A :class:`ScanRecord` from the admin API's JSON (see :meth:`EmulatorClient.set_scan`).

    :param request: the admin request's body (the image's key already taken out).
    :param now: the time the record is set (epoch seconds).
    """
    status = request.get("status", "COMPLETE")
    if status is not None:
        status = _check_status(status, "status", SCAN_STATUSES)
    findings = _check_findings(request.get("findings") or [], "findings")
    enhanced = request.get("enhanced_findings")
    if enhanced is not None:
        enhanced = _check_findings(enhanced, "enhanced_findings")
        if findings:
            raise ValueError("a scan is basic (findings) or enhanced (enhanced_findings), not both")
    pending_seconds = _seconds(request.get("pending_seconds", 0), "pending_seconds")
    pending_answers = request.get("pending_answers", 0)
    if isinstance(pending_answers, bool) or not isinstance(pending_answers, int) or pending_answers < 0:
        raise ValueError(f"pending_answers must be a non-negative integer, not {pending_answers!r}")
    tags = request.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("tags must be a list of strings")
    counts = request.get("counts")
    if counts is not None and not isinstance(counts, dict):
        raise ValueError("counts must be an object {severity: count}")
    completed_at = request.get("completed_at")
    source_updated_at = request.get("source_updated_at")
    return ScanRecord(
        status=status,
        description=request.get("description"),
        findings=findings,
        enhanced_findings=enhanced,
        tags=list(tags),
        pending_status=_check_status(
            request.get("pending_status", "IN_PROGRESS"), "pending_status", frozenset({"IN_PROGRESS", "PENDING"})
        ),
        pending_until=now + pending_seconds,
        pending_answers=pending_answers,
        completed_at=None if completed_at is None else _seconds(completed_at, "completed_at"),
        source_updated_at=None if source_updated_at is None else _seconds(source_updated_at, "source_updated_at"),
        counts=None if counts is None else {str(k): int(v) for k, v in counts.items()},
    )


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _page_offset(token: Any) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(token).encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise EmulatorError("InvalidParameterException", "Invalid parameter at 'nextToken': invalid token") from exc
    if not isinstance(offset, int) or offset < 0:
        raise EmulatorError("InvalidParameterException", "Invalid parameter at 'nextToken': invalid token")
    return offset


def _image_id_text(image_id: dict[str, Any]) -> str:
    # As ECR quotes an imageId in its messages.
    return f"{{imageDigest:'{image_id.get('imageDigest')}', imageTag:'{image_id.get('imageTag')}'}}"


class ScanStore:
    """The scan records by (account, region, repository, digest), guarded by their own lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str, str, str], ScanRecord] = {}

    def set(self, account_id: str, region: str, repository: str, digest: str, record: ScanRecord) -> None:
        """Set (or replace) one image's scan record."""
        if not digest.startswith("sha256:"):
            raise ValueError(f"digest must be sha256:<hex>, not {digest!r}")
        with self._lock:
            self._records[(account_id, region, repository, digest)] = record

    def clear(self) -> None:
        """Forget every scan record."""
        with self._lock:
            self._records.clear()

    def listing(self) -> list[dict[str, Any]]:
        """The records' keys and statuses (the admin API's ``GET /_emulator/scans``)."""
        now = time.time()
        with self._lock:
            return [
                {"account_id": a, "region": r, "repository": repo, "digest": d, "status": rec.current_status(now)}
                for (a, r, repo, d), rec in self._records.items()
            ]

    def describe(self, request: dict[str, Any], account_id: str, region: str) -> dict[str, Any]:
        """Answer ``DescribeImageScanFindings`` for the caller's ``region``.

        :param request: the request's JSON.
        :param account_id: the registry (``registryId``, else the caller's account).
        :param region: the region the call was signed for.
        """
        repository = request.get("repositoryName")
        image_id = request.get("imageId")
        if not isinstance(repository, str) or not isinstance(image_id, dict):
            raise EmulatorError("InvalidParameterException", "repositoryName and imageId are required")
        digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
        if not digest and not tag:
            raise EmulatorError(
                "InvalidParameterException", "Invalid parameter at 'imageId': an imageDigest or an imageTag is required"
            )
        limit = request.get("maxResults", DEFAULT_PAGE)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise EmulatorError(
                "InvalidParameterException", f"Invalid parameter at 'maxResults': must be 1 to {MAX_PAGE}"
            )
        offset = _page_offset(request["nextToken"]) if request.get("nextToken") else 0
        where = f"the repository with name '{repository}' in the registry with id '{account_id}'"
        now = time.time()
        with self._lock:
            place = (account_id, region, repository)
            in_repository = {d: rec for (a, r, repo, d), rec in self._records.items() if (a, r, repo) == place}
            if not in_repository:
                raise EmulatorError(
                    "RepositoryNotFoundException",
                    f"The repository with name '{repository}' does not exist in the registry with id '{account_id}'",
                )
            found = [
                (d, rec)
                for d, rec in in_repository.items()
                if (not digest or d == digest) and (not tag or tag in rec.tags)
            ]
            if not found:
                raise EmulatorError(
                    "ImageNotFoundException",
                    f"The image with imageId {_image_id_text(image_id)} does not exist within {where}",
                )
            image_digest, record = found[0]
            status = record.current_status(now)
            if status is None:
                raise EmulatorError(
                    "ScanNotFoundException",
                    f"Image scan does not exist for the image with '{_image_id_text(image_id)}' in {where}",
                )
            if record.pending_answers > 0:
                record.pending_answers -= 1
            answered_id = {"imageDigest": image_digest, **({"imageTag": tag} if tag else {})}
            answer: dict[str, Any] = {
                "registryId": account_id,
                "repositoryName": repository,
                "imageId": answered_id,
                "imageScanStatus": {"status": status},
            }
            if record.description:
                answer["imageScanStatus"]["description"] = record.description
            if status in FINDINGS_STATUSES:
                answer["imageScanFindings"], next_offset = self._findings_page(record, offset, limit)
                if next_offset is not None:
                    answer["nextToken"] = _page_token(next_offset)
            return answer

    @staticmethod
    def _findings_page(record: ScanRecord, offset: int, limit: int) -> tuple[dict[str, Any], int | None]:
        enhanced = record.enhanced_findings is not None
        every = record.enhanced_findings if record.enhanced_findings is not None else record.findings
        # By default the scan completed when its pending phase ended (when it was set, without one).
        completed_at = record.completed_at if record.completed_at is not None else record.pending_until
        counts = record.counts
        if counts is None:
            counts = dict(Counter(str(f.get("severity", "UNDEFINED")) for f in every))
        page = every[offset : offset + limit]
        findings: dict[str, Any] = {
            "imageScanCompletedAt": completed_at,
            "vulnerabilitySourceUpdatedAt": record.source_updated_at or completed_at,
            "findingSeverityCounts": counts,
            ("enhancedFindings" if enhanced else "findings"): page,
        }
        return findings, (offset + limit if offset + limit < len(every) else None)
