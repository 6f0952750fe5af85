"""The host's image policy verdict cache: round trip, expiry, permissions, corrupt files, disabled cache."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from airflow_ecr.settings import EcrSettings
from airflow_ecr.trust.outcome import SCAN, SIGNATURE, RuleOutcome, Verdict
from airflow_ecr.trust.verdicts import VerdictCache, verdict_from_json, verdict_to_json

DIGEST = "sha256:" + "ab" * 32
RULE = "f" * 64
NOW = 1_800_000_000.0
IMAGE = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml/train@{DIGEST}"


def verdict(*, passed: bool = True, scan_expires: float | None = NOW + 3600, digest: str = DIGEST) -> Verdict:
    return Verdict(
        IMAGE,
        digest,
        "ml-prod",
        (
            RuleOutcome(
                SCAN,
                passed,
                "no finding at or above HIGH" if passed else "1 CRITICAL finding: CVE-2024-0001",
                "" if passed else "rebuild on a patched base image",
                {"status": "COMPLETE", "counts": {"MEDIUM": 2}, "allowlisted": ["CVE-2024-1234"]},
                scan_expires,
            ),
            RuleOutcome(
                SIGNATURE,
                True,
                "signed by CN=acme",
                facts={"format": "notation", "identity": "CN=acme", "signing_time": "2026-12-01T10:00:00Z"},
                expires_at=NOW + 86400,
            ),
        ),
    )


@pytest.fixture
def cache(tmp_path: Path) -> VerdictCache:
    return VerdictCache(tmp_path / "airflow-ecr")


def test_a_passing_verdict_round_trips_as_cached(cache: VerdictCache) -> None:
    checked = verdict()
    cache.put(checked, RULE)
    found = cache.get(DIGEST, RULE, NOW)
    assert found is not None
    assert found.cached is True
    assert found == Verdict(checked.image, checked.digest, checked.scope, checked.outcomes, cached=True)
    assert found.as_record()["scan"]["allowlisted"] == ["CVE-2024-1234"]
    # The image as this task names it (by tag), same digest.
    by_tag = cache.get(DIGEST, RULE, NOW, image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml/train:1")
    assert by_tag is not None and by_tag.image.endswith("ml/train:1") and by_tag.outcomes == checked.outcomes


def test_the_json_form_is_the_verdict_without_its_cached_flag() -> None:
    checked = verdict(scan_expires=None)
    data = json.loads(json.dumps(verdict_to_json(checked, RULE)))
    assert data["digest"] == DIGEST and data["rule"] == RULE and "cached" not in data
    assert verdict_from_json(data) == checked


def test_another_rule_or_digest_misses(cache: VerdictCache) -> None:
    cache.put(verdict(), RULE)
    assert cache.get(DIGEST, "e" * 64, NOW) is None
    assert cache.get("sha256:" + "cd" * 32, RULE, NOW) is None


def test_a_refusal_is_not_kept(cache: VerdictCache) -> None:
    cache.put(verdict(passed=False), RULE)
    assert cache.get(DIGEST, RULE, NOW) is None
    assert not cache.path(DIGEST, RULE).exists()


def test_a_verdict_expires_with_its_earliest_outcome_and_its_file_goes(cache: VerdictCache) -> None:
    cache.put(verdict(scan_expires=NOW + 60), RULE)
    assert cache.get(DIGEST, RULE, NOW + 59) is not None
    assert cache.get(DIGEST, RULE, NOW + 60) is None
    assert not cache.path(DIGEST, RULE).exists()


def test_a_verdict_without_expiry_holds_for_the_digest(cache: VerdictCache) -> None:
    timeless = Verdict(IMAGE, DIGEST, "ml-prod", (RuleOutcome(SIGNATURE, True, "signed"),))
    cache.put(timeless, RULE)
    assert cache.get(DIGEST, RULE, NOW + 10 * 365 * 86400) is not None


def test_an_already_expired_verdict_is_not_written(cache: VerdictCache) -> None:
    cache.put(verdict(scan_expires=1.0), RULE)
    assert not cache.path(DIGEST, RULE).exists()


def test_files_are_private_and_the_directories_0700(tmp_path: Path) -> None:
    host = tmp_path / "absent" / "airflow-ecr"
    cache = VerdictCache(host)
    previous = os.umask(0o022)  # the usual umask: what is private must not depend on it
    try:
        cache.put(verdict(), RULE)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(host).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(host / "verdicts").st_mode) == 0o700
    path = cache.path(DIGEST, RULE)
    assert path.parent == host / "verdicts" and path.suffix == ".verdict"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in (host / "verdicts").iterdir()] == [path.name]  # no temp file left


def test_a_file_readable_by_others_is_ignored(cache: VerdictCache, caplog: pytest.LogCaptureFixture) -> None:
    cache.put(verdict(), RULE)
    os.chmod(cache.path(DIGEST, RULE), 0o644)
    with caplog.at_level(logging.WARNING):
        assert cache.get(DIGEST, RULE, NOW) is None
    assert "not private to this user" in caplog.text


def test_an_open_cache_directory_is_not_used(cache: VerdictCache) -> None:
    cache.put(verdict(), RULE)
    os.chmod(cache.directory, 0o755)
    assert cache.get(DIGEST, RULE, NOW) is None
    os.chmod(cache.directory, 0o700)
    os.chmod(cache.directory.parent, 0o755)
    assert cache.get(DIGEST, RULE, NOW) is None
    os.chmod(cache.directory.parent, 0o700)
    assert cache.get(DIGEST, RULE, NOW) is not None


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"[]",
        b'{"version": 1}',
        b"\xff\xfe",
        json.dumps({**verdict_to_json(verdict(), RULE), "version": 2}).encode(),
        json.dumps({**verdict_to_json(verdict(), RULE), "digest": "sha256:" + "00" * 32}).encode(),
        # A truthy string where a boolean decides: never read as a pass.
        json.dumps(
            {**verdict_to_json(verdict(), RULE), "outcomes": [{**verdict().outcomes[0].as_json(), "passed": "false"}]}
        ).encode(),
        json.dumps(
            {**verdict_to_json(verdict(), RULE), "outcomes": [{**verdict().outcomes[0].as_json(), "expires_at": "x"}]}
        ).encode(),
    ],
)
def test_a_corrupt_file_is_a_miss(cache: VerdictCache, content: bytes) -> None:
    cache.put(verdict(), RULE)
    path = cache.path(DIGEST, RULE)
    path.write_bytes(content)
    assert cache.get(DIGEST, RULE, NOW) is None


def test_a_failing_verdict_written_by_hand_is_not_served(cache: VerdictCache) -> None:
    cache.put(verdict(), RULE)
    cache.path(DIGEST, RULE).write_text(json.dumps(verdict_to_json(verdict(passed=False), RULE)))
    assert cache.get(DIGEST, RULE, NOW) is None


def test_an_unreadable_file_or_directory_is_a_miss(cache: VerdictCache) -> None:
    if os.geteuid() == 0:
        # root reads a mode-000 file anyway: make the entry a directory, which no read opens as a file.
        cache.put(verdict(), RULE)
        path = cache.path(DIGEST, RULE)
        path.unlink()
        path.mkdir()
    else:
        cache.put(verdict(), RULE)
        os.chmod(cache.path(DIGEST, RULE), 0)
    assert cache.get(DIGEST, RULE, NOW) is None


def test_a_symbolic_link_entry_is_not_followed(cache: VerdictCache, tmp_path: Path) -> None:
    cache.put(verdict(), RULE)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(cache.path(DIGEST, RULE).read_text())
    os.chmod(elsewhere, 0o600)
    cache.path(DIGEST, RULE).unlink()
    cache.path(DIGEST, RULE).symlink_to(elsewhere)
    assert cache.get(DIGEST, RULE, NOW) is None


def test_the_cache_follows_the_token_cache_setting(tmp_path: Path) -> None:
    assert VerdictCache.for_settings(EcrSettings(cache_enabled=False, cache_dir=tmp_path)) is None
    cache = VerdictCache.for_settings(EcrSettings(cache_dir=tmp_path / "host"))
    assert cache is not None and cache.directory == tmp_path / "host" / "verdicts"


def test_the_default_directory_is_the_token_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = VerdictCache.for_settings(EcrSettings())
    assert cache is not None and cache.directory == tmp_path / "airflow-ecr" / "verdicts"
