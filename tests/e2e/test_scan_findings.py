"""
The scan rule against the lab's own emulator (issue 26): the lab runs this very package's emulator
(``python -m airflow_ecr.testing.emulator``), so its admin API sets the scans a test needs and real
boto3 reads them over HTTP, as a task's check does. A critical finding and a scan pending past its
wait are refused; a clean image and an allowlisted finding pass; the calls are counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from airflow_ecr.testing.emulator import EmulatorClient
from airflow_ecr.trust.scan import AllowedFinding, ScanRule, evaluate_scan, fetch_scan

REPOSITORY = "policy/scanned"
CLEAN = "sha256:" + "1" * 64
VULNERABLE = "sha256:" + "2" * 64
PENDING = "sha256:" + "3" * 64


@pytest.fixture
def scans(emulator: EmulatorClient) -> Iterator[EmulatorClient]:
    """The lab's emulator with this module's scan records, cleared after the test."""
    emulator.clear_scans()
    yield emulator
    emulator.clear_scans()


@pytest.fixture
def ecr(lab: Any) -> Any:
    account = lab.account()
    return boto3.client(
        "ecr",
        region_name=account["region"],
        endpoint_url=lab.emulator_url,
        aws_access_key_id="E2ESCAN",
        aws_secret_access_key="not-a-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


def critical(cve: str) -> dict[str, Any]:
    return {
        "awsAccountId": "000000000000",
        "packageVulnerabilityDetails": {"vulnerabilityId": cve},
        "severity": "CRITICAL",
        "status": "ACTIVE",
        "type": "PACKAGE_VULNERABILITY",
        "fixAvailable": "YES",
        "exploitAvailable": "YES",
    }


def test_the_labs_emulator_answers_the_scan_rule(lab: Any, scans: EmulatorClient, ecr: Any) -> None:
    account = lab.account()
    registry, region = account["account_id"], account["region"]
    where = {"account_id": registry, "region": region}
    scans.set_scan(REPOSITORY, CLEAN, "ACTIVE", enhanced_findings=[], **where)
    scans.set_scan(REPOSITORY, VULNERABLE, "ACTIVE", enhanced_findings=[critical("CVE-2024-3094")], **where)
    scans.set_scan(REPOSITORY, PENDING, "IN_PROGRESS", **where)
    today = date.today()
    rule = ScanRule(pending_wait_seconds=1)

    clean, requests = fetch_scan(ecr, registry, REPOSITORY, CLEAN, rule.pending_wait_seconds)
    assert requests == 1 and evaluate_scan(clean, rule, today, 0).passed

    vulnerable, _ = fetch_scan(ecr, registry, REPOSITORY, VULNERABLE, rule.pending_wait_seconds)
    refused = evaluate_scan(vulnerable, rule, today, 0)
    assert not refused.passed and refused.facts["failing"] == ["CVE-2024-3094"]
    allowed = ScanRule(allow=(AllowedFinding("CVE-2024-3094", today + timedelta(days=7), "not reachable"),))
    assert evaluate_scan(vulnerable, allowed, today, 0).passed

    pending, requests = fetch_scan(ecr, registry, REPOSITORY, PENDING, rule.pending_wait_seconds)
    assert pending.status == "IN_PROGRESS" and requests == 2  # one poll after a (bounded) 1 s wait
    outcome = evaluate_scan(pending, rule, today, 0)
    assert not outcome.passed and "still IN_PROGRESS" in outcome.summary

    calls = [c for c in scans.calls("E2ESCAN") if c["target"].endswith("DescribeImageScanFindings")]
    assert [c["outcome"] for c in calls] == ["ok"] * 4
