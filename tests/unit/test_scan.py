"""
The image policy's scan rule (issue 26): :func:`evaluate_scan` on every status, threshold, the
fix-available filter and the allowlist (live and expired entries), and :func:`fetch_scan` with real
boto3 over HTTP against the in-process emulator: pagination, a pending scan waited for (a fake
clock and sleep, so the backoff is seen without waiting it), and AWS failures in one sentence.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.config import Config

from airflow_ecr.exceptions import EcrConfigurationError, EcrCredentialsError, EcrImageNotFoundError, EcrServiceError
from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount, EmulatorClient
from airflow_ecr.trust.outcome import SCAN
from airflow_ecr.trust.scan import (
    NOT_SCANNED,
    AllowedFinding,
    ScanFinding,
    ScanReport,
    ScanRule,
    evaluate_scan,
    fetch_scan,
)

ACCOUNT, REGION = "111111111111", "eu-west-1"
DIGEST = "sha256:" + "d" * 64
TODAY = date(2026, 12, 7)
NOW = 1_800_000_000.0
COMPLETED = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def report(*findings: ScanFinding, status: str = "COMPLETE", source: str = "basic", **kwargs: Any) -> ScanReport:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    return ScanReport(DIGEST, status, completed_at=COMPLETED, source=source, findings=findings, counts=counts, **kwargs)


CRIT = ScanFinding("CVE-2024-0001", "CRITICAL", True, True)
CRIT_NO_FIX = ScanFinding("CVE-2024-0002", "CRITICAL", False, False)
HIGH = ScanFinding("CVE-2024-0003", "HIGH", True, False)
LOW = ScanFinding("CVE-2024-0004", "LOW", None, None)


# -- evaluate_scan ----------------------------------------------------------------------------------
def test_a_clean_complete_scan_passes_and_records_its_facts_for_a_refresh_period() -> None:
    outcome = evaluate_scan(report(LOW), ScanRule(), TODAY, NOW)
    assert (outcome.rule, outcome.passed, outcome.fix) == (SCAN, True, "")
    assert "no findings at or above CRITICAL" in outcome.summary
    assert outcome.facts == {
        "status": "COMPLETE",
        "completed_at": "2026-12-06T12:00:00+00:00",
        "source": "basic",
        "counts": {"LOW": 1},
        "allowlisted": [],
        "failing": [],
    }
    assert outcome.expires_at == NOW + 3600
    assert evaluate_scan(report(LOW), ScanRule(refresh_seconds=60), TODAY, NOW).expires_at == NOW + 60


def test_findings_at_or_above_the_threshold_fail_most_severe_first() -> None:
    outcome = evaluate_scan(report(LOW, HIGH, CRIT), ScanRule(fail_at="HIGH"), TODAY, NOW)
    assert not outcome.passed
    assert outcome.facts["failing"] == ["CVE-2024-0001", "CVE-2024-0003"]
    assert outcome.summary == f"2 finding(s) at or above HIGH in {DIGEST}: CVE-2024-0001, CVE-2024-0003"
    assert outcome.fix.startswith("rebuild on a patched base image")
    assert evaluate_scan(report(LOW, HIGH), ScanRule(), TODAY, NOW).passed  # CRITICAL only
    assert not evaluate_scan(report(LOW), ScanRule(fail_at="LOW"), TODAY, NOW).passed
    undefined = ScanFinding("CVE-2024-0005", "UNDEFINED")
    assert evaluate_scan(report(undefined), ScanRule(fail_at="INFORMATIONAL"), TODAY, NOW).passed
    assert not evaluate_scan(report(undefined), ScanRule(fail_at="UNDEFINED"), TODAY, NOW).passed


def test_untriaged_findings_fail_at_any_threshold() -> None:
    untriaged = ScanFinding("CVE-2026-9999", "UNTRIAGED", None, False)
    outcome = evaluate_scan(report(untriaged, source="enhanced"), ScanRule(fail_at="CRITICAL"), TODAY, NOW)
    assert not outcome.passed and "UNTRIAGED" in outcome.summary
    allowed = ScanRule(allow=(AllowedFinding("CVE-2026-9999", date(2027, 1, 1), "vendor rating pending"),))
    assert evaluate_scan(report(untriaged, source="enhanced"), allowed, TODAY, NOW).passed


def test_only_fix_available_ignores_findings_known_to_have_no_fix() -> None:
    rule = ScanRule(only_fix_available=True)
    assert evaluate_scan(report(CRIT_NO_FIX, source="enhanced"), rule, TODAY, NOW).passed
    outcome = evaluate_scan(report(CRIT_NO_FIX, CRIT, source="enhanced"), rule, TODAY, NOW)
    assert not outcome.passed and outcome.facts["failing"] == ["CVE-2024-0001"]
    assert "with a fix available" in outcome.summary
    # Basic scanning does not say whether a fix exists: the finding still fails (fail closed).
    unknown = ScanFinding("CVE-2024-0006", "CRITICAL")
    assert not evaluate_scan(report(unknown), rule, TODAY, NOW).passed


def test_live_allowlist_entries_let_their_findings_through_and_are_recorded() -> None:
    rule = ScanRule(
        fail_at="HIGH",
        allow=(
            AllowedFinding("cve-2024-0001", TODAY, "no network exposure"),  # expires today: still counts
            AllowedFinding("CVE-2024-0003", date(2027, 6, 1), "fixed upstream next release"),
        ),
    )
    outcome = evaluate_scan(report(CRIT, HIGH, LOW), rule, TODAY, NOW)
    assert outcome.passed
    assert outcome.facts["allowlisted"] == ["CVE-2024-0001", "CVE-2024-0003"]
    assert "2 allowlisted" in outcome.summary


def test_an_expired_allowlist_entry_no_longer_counts_and_the_summary_says_so() -> None:
    rule = ScanRule(allow=(AllowedFinding("CVE-2024-0001", date(2026, 12, 6), "temporary"),))
    outcome = evaluate_scan(report(CRIT), rule, TODAY, NOW)
    assert not outcome.passed and outcome.facts["allowlisted"] == []
    assert "the allowlist entries for CVE-2024-0001 expired on 2026-12-06" in outcome.summary
    assert "renew the expired allowlist entries" in outcome.fix


def test_failing_ids_are_capped_at_ten() -> None:
    many = [ScanFinding(f"CVE-2024-{n:04d}", "CRITICAL") for n in range(25)]
    outcome = evaluate_scan(report(*many), ScanRule(), TODAY, NOW)
    assert len(outcome.facts["failing"]) == 10 and "and 22 more" in outcome.summary


@pytest.mark.parametrize("status", ["IN_PROGRESS", "PENDING"])
def test_a_scan_still_pending_after_its_wait_fails_and_is_never_reused(status: str) -> None:
    pending = ScanReport(DIGEST, status, waited_seconds=60)
    outcome = evaluate_scan(pending, ScanRule(pending_wait_seconds=60), TODAY, NOW)
    assert not outcome.passed
    assert outcome.summary == f"the scan of {DIGEST} is still {status} after 60 s"
    assert "pending_wait_seconds" in outcome.fix
    assert outcome.expires_at == NOW  # expired at once: not cached as passing, nor for good


def test_an_unsupported_image_follows_on_unsupported() -> None:
    unsupported = ScanReport(DIGEST, "UNSUPPORTED_IMAGE", "UnsupportedImageError: the OS is not supported")
    failed = evaluate_scan(unsupported, ScanRule(), TODAY, NOW)
    assert not failed.passed and "UNSUPPORTED_IMAGE: UnsupportedImageError" in failed.summary
    assert "on_unsupported" in failed.fix
    passed = evaluate_scan(unsupported, ScanRule(on_unsupported="pass"), TODAY, NOW)
    assert passed.passed and passed.fix == "" and passed.expires_at == NOW + 3600


@pytest.mark.parametrize("status", ["FAILED", "FINDINGS_UNAVAILABLE", "SCAN_ELIGIBILITY_EXPIRED", NOT_SCANNED])
def test_unavailable_findings_follow_on_unavailable(status: str) -> None:
    unavailable = ScanReport(DIGEST, status)
    failed = evaluate_scan(unavailable, ScanRule(on_unsupported="pass"), TODAY, NOW)
    assert not failed.passed and "on_unavailable" in failed.fix
    assert ("no scan of" in failed.summary) == (status == NOT_SCANNED)
    assert evaluate_scan(unavailable, ScanRule(on_unavailable="pass"), TODAY, NOW).passed


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"fail_at": "SEVERE"}, "fail_at 'SEVERE' is not a severity"),
        ({"on_unsupported": "warn"}, "on_unsupported 'warn'"),
        ({"pending_wait_seconds": -1}, "pending_wait_seconds"),
    ],
)
def test_a_bad_rule_is_one_sentence(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(EcrConfigurationError, match=says):
        ScanRule(**kwargs)


# -- fetch_scan against the emulator -----------------------------------------------------------------
@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCOUNT, REGION)]) as emulator:
        yield emulator


@pytest.fixture
def admin(emu: EcrEmulator) -> Iterator[EmulatorClient]:
    client = EmulatorClient(emu.url, token=emu.admin_token)
    client.reset()
    yield client
    client.reset()
    client.clear_scans()


@pytest.fixture
def ecr(emu: EcrEmulator) -> Any:
    return boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=emu.url,
        aws_access_key_id="SCANKEY",
        aws_secret_access_key="not-a-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


class FakeClock:
    """A monotonic clock that only sleeping moves; the sleeps asked for are recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scan_calls(admin: EmulatorClient) -> int:
    return sum(c["target"].endswith("DescribeImageScanFindings") for c in admin.calls())


def enhanced(n: int, severity: str, fix: str) -> dict[str, Any]:
    return {
        "awsAccountId": ACCOUNT,
        "findingArn": f"arn:aws:inspector2:{REGION}:{ACCOUNT}:finding/{n:032x}",
        "packageVulnerabilityDetails": {"vulnerabilityId": f"CVE-2025-{n:04d}", "vulnerablePackages": []},
        "severity": severity,
        "status": "ACTIVE",
        "title": f"CVE-2025-{n:04d} - openssl",
        "type": "PACKAGE_VULNERABILITY",
        "fixAvailable": fix,
        "exploitAvailable": "YES" if n == 0 else "NO",
    }


def test_fetch_reads_every_page_of_an_enhanced_scan(admin: EmulatorClient, ecr: Any) -> None:
    findings = [enhanced(n, "CRITICAL" if n < 2 else "MEDIUM", "NO" if n == 1 else "YES") for n in range(7)]
    admin.set_scan("team/app", DIGEST, "ACTIVE", enhanced_findings=findings, completed_at=1_765_000_000)
    clock = FakeClock()
    got, requests = fetch_scan(ecr, ACCOUNT, "team/app", DIGEST, 0, clock.sleep, clock.monotonic, page_size=3)
    assert requests == 3 == scan_calls(admin) and clock.sleeps == []
    assert (got.status, got.source, got.counts) == ("ACTIVE", "enhanced", {"CRITICAL": 2, "MEDIUM": 5})
    assert [f.id for f in got.findings] == [f"CVE-2025-{n:04d}" for n in range(7)]
    assert got.findings[0] == ScanFinding("CVE-2025-0000", "CRITICAL", True, True)
    assert got.findings[1].fix_available is False
    assert got.completed_at == datetime.fromtimestamp(1_765_000_000, timezone.utc)
    outcome = evaluate_scan(got, ScanRule(only_fix_available=True), TODAY, NOW)
    assert not outcome.passed and outcome.facts["failing"] == ["CVE-2025-0000"]


def test_fetch_reads_a_basic_scan(admin: EmulatorClient, ecr: Any) -> None:
    basic = [{"name": "CVE-2023-1111", "uri": "https://x", "severity": "HIGH", "attributes": []}]
    admin.set_scan("team/app", DIGEST, findings=basic)
    got, requests = fetch_scan(ecr, ACCOUNT, "team/app", DIGEST, 0)
    assert requests == 1
    assert (got.status, got.source, got.findings) == ("COMPLETE", "basic", (ScanFinding("CVE-2023-1111", "HIGH"),))


def test_fetch_waits_for_a_pending_scan_with_a_growing_bounded_backoff(admin: EmulatorClient, ecr: Any) -> None:
    admin.set_scan("team/app", DIGEST, findings=[], pending_answers=4)
    clock = FakeClock()
    got, requests = fetch_scan(ecr, ACCOUNT, "team/app", DIGEST, 60, clock.sleep, clock.monotonic)
    assert got.status == "COMPLETE" and requests == 5 == scan_calls(admin)
    assert clock.sleeps == [2, 4, 8, 10]
    assert got.waited_seconds == 24
    assert evaluate_scan(got, ScanRule(pending_wait_seconds=60), TODAY, NOW).passed


def test_fetch_gives_up_on_a_scan_still_pending_after_the_wait(admin: EmulatorClient, ecr: Any) -> None:
    admin.set_scan("team/app", DIGEST, "IN_PROGRESS")
    clock = FakeClock()
    got, requests = fetch_scan(ecr, ACCOUNT, "team/app", DIGEST, 30, clock.sleep, clock.monotonic)
    assert got.status == "IN_PROGRESS"
    assert clock.sleeps == [2, 4, 8, 10, 6]  # the last wait is what is left of the 30 s
    assert requests == 6 and got.waited_seconds == 30
    outcome = evaluate_scan(got, ScanRule(pending_wait_seconds=30), TODAY, NOW)
    assert not outcome.passed and outcome.summary == f"the scan of {DIGEST} is still IN_PROGRESS after 30 s"
    # No wait: one request.
    got, requests = fetch_scan(ecr, ACCOUNT, "team/app", DIGEST, 0, clock.sleep, clock.monotonic)
    assert (got.status, requests) == ("IN_PROGRESS", 1)


def test_a_digest_never_scanned_is_not_scanned(admin: EmulatorClient, ecr: Any) -> None:
    admin.set_scan("team/app", DIGEST, None)
    got, requests = fetch_scan(ecr, ACCOUNT, "team/app", DIGEST, 60, FakeClock().sleep)
    assert (got.status, requests) == (NOT_SCANNED, 1)
    assert not evaluate_scan(got, ScanRule(), TODAY, NOW).passed


def test_a_denied_call_is_one_sentence_naming_the_iam_action(admin: EmulatorClient, ecr: Any) -> None:
    admin.set_scan("team/app", DIGEST)
    admin.faults(deny_actions=["DescribeImageScanFindings"])
    with pytest.raises(EcrCredentialsError) as info:
        fetch_scan(ecr, ACCOUNT, "team/app", DIGEST, 0)
    text = str(info.value)
    assert "not allowed ecr:DescribeImageScanFindings for " + DIGEST in text
    assert "grant it ecr:DescribeImageScanFindings on the repository" in text
    assert info.value.failure is not None and info.value.failure.kind == "access_denied"


def test_an_unknown_repository_or_image_is_image_not_found(admin: EmulatorClient, ecr: Any) -> None:
    admin.set_scan("team/app", DIGEST)
    for repository, digest in (("team/none", DIGEST), ("team/app", "sha256:" + "e" * 64)):
        with pytest.raises(EcrImageNotFoundError, match=f"ECR has no image {digest} in repository {repository}"):
            fetch_scan(ecr, ACCOUNT, repository, digest, 0)


def test_an_unreachable_api_is_a_service_error(emu: EcrEmulator) -> None:
    from helpers.processes import free_port

    client = boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        aws_access_key_id="K",
        aws_secret_access_key="S",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    with pytest.raises(EcrServiceError, match=r"Cannot reach the AWS API at http://127\.0\.0\.1:") as info:
        fetch_scan(client, ACCOUNT, "team/app", DIGEST, 0)
    assert "ecr:DescribeImageScanFindings" in str(info.value)
