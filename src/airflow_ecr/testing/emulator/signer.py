"""AWS Signer's revocations as the emulator keeps and answers them: ``GetRevocationStatus`` (REST-JSON).

``GET /revocations?signatureTimestamp=…&platformId=…&profileVersionArn=…&jobArn=…&certificateHashes=…``
answers ``{"revokedEntities": [...]}``: those of the request's profile version ARN, job ARN and
certificate hashes that are revoked, as AWS Signer does. A revoked signing profile version has an
effective time (``RevokeSigningProfile``'s ``effectiveTime``): only signatures made at or after it
are revoked. A test revokes through the admin API (``POST /_emulator/signer/revoke``).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

from airflow_ecr.testing.emulator.model import EmulatorError

REVOCATIONS_PATH = "/revocations"
# Required query parameters, and the one that is a list (repeated in the query).
_REQUIRED = ("signatureTimestamp", "platformId", "profileVersionArn", "jobArn", "certificateHashes")
# botocore's Arn shape: 20 to 2048 characters.
_ARN_MIN, _ARN_MAX = 20, 2048


def parse_timestamp(value: str) -> float:
    """A query timestamp (ISO 8601, as botocore sends it, or epoch seconds) as epoch seconds."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EmulatorError("ValidationException", f"signatureTimestamp {value!r} is not a timestamp") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


class RevocationStore:
    """Revoked signing profile versions (with their effective time), signing jobs and certificate hashes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._profiles: dict[str, float] = {}
        self._jobs: set[str] = set()
        self._certificates: set[str] = set()

    def revoke(
        self,
        *,
        profile_version_arn: str | None = None,
        effective_time: float | None = None,
        job_arn: str | None = None,
        certificate_hash: str | None = None,
    ) -> None:
        """Revoke what is given.

        :param profile_version_arn: a signing profile version ARN.
        :param effective_time: epoch seconds from which the profile's signatures are revoked
            (default: all of them).
        :param job_arn: a signing job ARN.
        :param certificate_hash: a certificate hash, as the Notation AWS Signer plugin sends it.
        """
        if not (profile_version_arn or job_arn or certificate_hash):
            raise ValueError("revoke needs profile_version_arn, job_arn or certificate_hash")
        with self._lock:
            if profile_version_arn:
                self._profiles[str(profile_version_arn)] = float(effective_time or 0.0)
            if job_arn:
                self._jobs.add(str(job_arn))
            if certificate_hash:
                self._certificates.add(str(certificate_hash))

    def clear(self) -> None:
        """Revoke nothing any more."""
        with self._lock:
            self._profiles.clear()
            self._jobs.clear()
            self._certificates.clear()

    def listing(self) -> dict[str, Any]:
        """What is revoked (the admin API's ``GET /_emulator/signer/revocations``)."""
        with self._lock:
            return {
                "profile_versions": dict(self._profiles),
                "jobs": sorted(self._jobs),
                "certificate_hashes": sorted(self._certificates),
            }

    def status(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """Answer ``GetRevocationStatus``.

        :param query: the request's query parameters, each with its values.
        """
        missing = [name for name in _REQUIRED if not query.get(name)]
        if missing:
            raise EmulatorError("ValidationException", f"Missing required parameters: {', '.join(missing)}")
        for name in ("profileVersionArn", "jobArn"):
            if not _ARN_MIN <= len(query[name][0]) <= _ARN_MAX:
                raise EmulatorError("ValidationException", f"{name} must be {_ARN_MIN} to {_ARN_MAX} characters long")
        signed_at = parse_timestamp(query["signatureTimestamp"][0])
        profile, job = query["profileVersionArn"][0], query["jobArn"][0]
        revoked: list[str] = []
        with self._lock:
            effective = self._profiles.get(profile)
            if effective is not None and signed_at >= effective:
                revoked.append(profile)
            if job in self._jobs:
                revoked.append(job)
            revoked.extend(h for h in query["certificateHashes"] if h in self._certificates)
        return {"revokedEntities": revoked}
