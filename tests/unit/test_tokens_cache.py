"""tokens/cache.py with a counting fake source: cache layers, refresh, fallback, files, invalidation."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Sequence
from typing import Any

import pytest

from airflow_ecr.exceptions import EcrServiceError
from airflow_ecr.registry import EcrRegistry, parse_registry_host
from airflow_ecr.tokens.cache import CacheSettings, TokenCache
from airflow_ecr.tokens.token import EcrToken

REG = parse_registry_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com")
REG2 = parse_registry_host("222222222222.dkr.ecr.eu-west-1.amazonaws.com")


class FakeSource:
    """Hands out numbered tokens living ``ttl`` seconds; can be told to fail."""

    def __init__(self, identity: str = "id-a", ttl: float = 100.0, expired: bool = False) -> None:
        self.identity = identity
        self.description = f"fake {identity}"
        self.ttl = ttl
        self.expired = expired
        self.calls: list[list[str]] = []
        self.fail: Exception | None = None

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        self.calls.append([r.registry_id for r in registries])
        if self.fail:
            raise self.fail
        now = time.time()
        expires = now - 10 if self.expired else now + self.ttl
        return {
            r.registry_id: EcrToken("AWS", f"pw-{self.identity}-{len(self.calls)}", f"https://{r.host}", expires, now)
            for r in registries
        }


@pytest.fixture(autouse=True)
def _fresh_memory():
    TokenCache.clear_memory()
    yield
    TokenCache.clear_memory()


def cache(tmp_path, **kw) -> TokenCache:
    return TokenCache(CacheSettings(directory=tmp_path / "cache", **kw))


def test_second_lookup_is_served_from_memory_then_from_file(tmp_path):
    source = FakeSource()
    first = cache(tmp_path).get_one(source, REG)
    assert cache(tmp_path).get_one(source, REG) == first
    TokenCache.clear_memory()  # as a new task process would start
    assert cache(tmp_path).get_one(source, REG) == first
    assert len(source.calls) == 1


def test_identities_and_registries_never_share_entries(tmp_path):
    a, b = FakeSource("id-a"), FakeSource("id-b")
    c = cache(tmp_path)
    assert c.get_one(a, REG).password != c.get_one(b, REG).password
    assert c.get_one(a, REG) != c.get_one(a, REG2)
    assert len(a.calls) == 2 and len(b.calls) == 1


def test_several_registries_of_a_region_share_one_call(tmp_path):
    source = FakeSource()
    tokens = cache(tmp_path).get(source, [REG, REG2])
    assert set(tokens) == {REG.host, REG2.host}
    assert source.calls == [["111111111111", "222222222222"]]


def test_refreshes_after_ratio_of_life(tmp_path):
    source = FakeSource(ttl=1.0)
    c = cache(tmp_path, refresh_ratio=0.5)
    first = c.get_one(source, REG)
    assert c.get_one(source, REG) == first
    time.sleep(0.6)
    assert c.get_one(source, REG) != first
    assert len(source.calls) == 2


def test_falls_back_to_a_valid_cached_token_when_ecr_fails(tmp_path, caplog):
    source = FakeSource(ttl=2.0)
    c = cache(tmp_path, refresh_ratio=0.1)
    first = c.get_one(source, REG)
    time.sleep(0.3)
    source.fail = EcrServiceError("ECR is down")
    with caplog.at_level(logging.WARNING):
        assert c.get_one(source, REG) == first
    assert "Using cached ECR tokens" in caplog.text
    assert first.password not in caplog.text


def test_never_serves_an_expired_token(tmp_path):
    source = FakeSource(ttl=0.5)
    c = cache(tmp_path)
    c.get_one(source, REG)
    time.sleep(0.6)
    source.fail = EcrServiceError("ECR is down")
    with pytest.raises(EcrServiceError):
        c.get_one(source, REG)


def test_token_born_expired_is_used_once_and_not_cached(tmp_path):
    source = FakeSource(expired=True)
    c = cache(tmp_path)
    assert c.get_one(source, REG).password == "pw-id-a-1"
    assert c.get_one(source, REG).password == "pw-id-a-2"
    assert not list((tmp_path / "cache").glob("*.json"))


def test_cache_files_are_private_and_hold_no_secret_in_their_names(tmp_path):
    source = FakeSource()
    token = cache(tmp_path).get_one(source, REG)
    directory = tmp_path / "cache"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = list(directory.glob("*.json"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert token.password not in files[0].name and "111111111111" not in files[0].name
    assert not list(directory.glob(".tmp-*"))


def test_file_cache_off_keeps_memory_only(tmp_path):
    source = FakeSource()
    c = TokenCache(CacheSettings(directory=None))
    c.get_one(source, REG)
    TokenCache.clear_memory()
    c.get_one(source, REG)
    assert len(source.calls) == 2
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("content", ["", "{not json", '{"version": 99}', '{"version": 1, "password": ""}', "[]"])
def test_corrupt_cache_file_is_ignored(tmp_path, content, caplog):
    source = FakeSource()
    c = cache(tmp_path)
    c.get_one(source, REG)
    (path,) = (tmp_path / "cache").glob("*.json")
    path.write_text(content)
    TokenCache.clear_memory()
    assert c.get_one(source, REG).password == "pw-id-a-2"
    assert json.loads(path.read_text())["password"] == "pw-id-a-2"  # rewritten


def test_group_readable_cache_file_is_ignored(tmp_path, caplog):
    source = FakeSource()
    c = cache(tmp_path)
    c.get_one(source, REG)
    (path,) = (tmp_path / "cache").glob("*.json")
    os.chmod(path, 0o644)
    TokenCache.clear_memory()
    with caplog.at_level(logging.WARNING):
        c.get_one(source, REG)
    assert "not private" in caplog.text
    assert len(source.calls) == 2


def test_world_accessible_cache_directory_disables_the_file_cache(tmp_path, caplog):
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    source = FakeSource()
    with caplog.at_level(logging.WARNING):
        cache(tmp_path).get_one(source, REG)
    assert "accessible to other users" in caplog.text
    assert not list(directory.iterdir())


def test_unwritable_cache_location_is_bypassed(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    source = FakeSource()
    c = TokenCache(CacheSettings(directory=blocker / "cache"))
    with caplog.at_level(logging.WARNING):
        assert c.get_one(source, REG)
    assert "cannot create" in caplog.text


def test_invalidate_forgets_the_rejected_token_only(tmp_path):
    source = FakeSource()
    c = cache(tmp_path)
    old = c.get_one(source, REG)
    c.invalidate(source, REG, old)
    new = c.get_one(source, REG)
    assert new != old and len(source.calls) == 2
    c.invalidate(source, REG, old)  # a stale rejection must not drop the newer token
    TokenCache.clear_memory()
    assert c.get_one(source, REG) == new
    assert len(source.calls) == 2


def test_token_repr_hides_the_password():
    token = EcrToken("AWS", "s3cr3t", "https://x", 2.0, 1.0)
    assert "s3cr3t" not in repr(token)


@pytest.mark.parametrize("ratio", ["0", "1.5", "-1"])
def test_refresh_ratio_out_of_range_is_a_configuration_error(monkeypatch, ratio):
    from airflow_ecr.exceptions import EcrConfigurationError

    monkeypatch.setenv("AIRFLOW__ECR__REFRESH_RATIO", ratio)
    with pytest.raises(EcrConfigurationError, match="refresh_ratio must be in"):
        CacheSettings.from_airflow_config()


def test_min_life_refetches_a_cached_token_that_would_not_live_long_enough(tmp_path):
    source = FakeSource(ttl=100.0)
    c = cache(tmp_path)
    first = c.get_one(source, REG)
    assert c.get_one(source, REG, min_life=50) == first  # 100 s left (minus margin): reused
    second = c.get_one(source, REG, min_life=95)  # more than a cached token can offer: fetched
    assert second != first
    assert c.get_one(source, REG, min_life=500) != second  # never satisfiable: fetched, not looped
    assert len(source.calls) == 3


class LocatedSource(FakeSource):
    """A fake source that, like a connection-based one, has a cheap locator and a costly identity."""

    def __init__(self, identity: str = "id-a", locator: str = "conn aws_default", **kwargs: Any) -> None:
        super().__init__(identity, **kwargs)
        self._identity = identity
        self.locator = locator
        self.identity_reads = 0

    @property  # type: ignore[override]
    def identity(self) -> str:
        self.identity_reads += 1
        return self._identity

    @identity.setter
    def identity(self, value: str) -> None:
        self._identity = value


def test_a_warm_lookup_in_a_new_process_needs_no_identity(tmp_path):
    """The identity index: a cache hit does not compute the identity (an Airflow connection lookup)."""
    source = LocatedSource()
    first = cache(tmp_path).get_one(source, REG)
    reads = source.identity_reads
    TokenCache.clear_memory()  # as a new task process would start
    assert cache(tmp_path).get_one(source, REG) == first
    assert source.identity_reads == reads
    assert len(source.calls) == 1
    (record,) = (tmp_path / "cache").glob("*.identity")
    assert stat.S_IMODE(record.stat().st_mode) == 0o600 and "aws_default" not in record.read_text()


def test_an_identity_change_is_read_at_the_next_fetch_and_never_mixes_tokens(tmp_path):
    """A connection edited to another role: the next fetch stores the new role's token under the new identity."""
    c = cache(tmp_path)
    old = LocatedSource("role-a")
    token_a = c.get_one(old, REG)
    new = LocatedSource("role-b")  # same conn id and environment, other identity behind them
    token_b = c.get_one(new, REG, min_life=1000)  # due: the fetch reads the connection
    assert token_b.password == "pw-role-b-1" and token_b != token_a
    TokenCache.clear_memory()
    assert c.get_one(new, REG).password == "pw-role-b-1"  # the index now names role-b
    assert c.get_one(FakeSource("role-a"), REG) == token_a  # role-a's entry kept its own token


def test_the_identity_record_expires_and_a_rejection_drops_it(tmp_path, monkeypatch):
    source = LocatedSource()
    c = cache(tmp_path)
    token = c.get_one(source, REG)
    reads = source.identity_reads
    c.invalidate(source, REG, token)
    c.get_one(source, REG)
    assert source.identity_reads > reads  # re-read after the registry rejected a token
    reads = source.identity_reads
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 16 * 60)  # past IDENTITY_RECHECK
    TokenCache.clear_memory()
    c.get_one(source, REG)
    assert source.identity_reads > reads


def test_caches_with_other_settings_do_not_share_memory(tmp_path):
    source = FakeSource(ttl=1.0)
    eager = TokenCache(CacheSettings(directory=None, refresh_ratio=0.01))
    lazy = TokenCache(CacheSettings(directory=None, refresh_ratio=1.0))
    lazy.get_one(source, REG)
    time.sleep(0.05)
    eager.get_one(source, REG)  # its own memory: fetches instead of reusing lazy's token
    assert len(source.calls) == 2


def test_the_shared_cache_follows_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "one"))
    first = TokenCache.shared()
    assert TokenCache.shared() is first
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "two"))
    assert TokenCache.shared() is not first and TokenCache.shared().settings.directory == tmp_path / "two"
