"""
Placeholder of the scan rule's model (the scan helper's full module replaces this file at merge).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

# ECR's severities, highest first.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")


@dataclass(frozen=True)
class AllowedFinding:
    id: str
    expires: datetime.date
    reason: str


@dataclass(frozen=True)
class ScanRule:
    fail_at: str = "CRITICAL"
    only_fix_available: bool = False
    allow: tuple[AllowedFinding, ...] = ()
    pending_wait_seconds: float = 0
    on_unsupported: str = "fail"
    on_unavailable: str = "fail"
    refresh_seconds: float = 3600
