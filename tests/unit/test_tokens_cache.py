"""tokens/cache.py with a counting fake source: cache layers, refresh, fallback, files, invalidation."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from airflow_ecr import process_state
from airflow_ecr.exceptions import EcrCredentialsError, EcrError, EcrServiceError
from airflow_ecr.registry import EcrRegistry, parse_registry_host
from airflow_ecr.settings import EcrSettings
from airflow_ecr.tokens.aws_errors import classify, token_error
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.token import EcrToken

REG = parse_registry_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com")
REG2 = parse_registry_host("222222222222.dkr.ecr.eu-west-1.amazonaws.com")


class FakeSource:
    """Hands out numbered tokens living ``ttl`` seconds; can be told to fail."""

    def __init__(self, identity: str = "id-a", ttl: float = 100.0, expired: bool = False, delay: float = 0) -> None:
        self.identity = identity
        self.description = f"fake {identity}"
        self.ttl = ttl
        self.expired = expired
        self.delay = delay
        self.calls: list[list[str]] = []
        self.fail: Exception | None = None

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        self.calls.append([r.registry_id for r in registries])
        time.sleep(self.delay)
        if self.fail:
            raise self.fail
        now = time.time()
        expires = now - 10 if self.expired else now + self.ttl
        return {
            r.registry_id: EcrToken("AWS", f"pw-{self.identity}-{len(self.calls)}", f"https://{r.host}", expires, now)
            for r in registries
        }


def cache(tmp_path, **kw) -> TokenCache:
    return TokenCache(EcrSettings(cache_dir=tmp_path / "cache", **kw))


def test_second_lookup_is_served_from_memory_then_from_file(tmp_path):
    source = FakeSource()
    first = cache(tmp_path).get_one(source, REG)
    assert cache(tmp_path).get_one(source, REG) == first
    process_state.reset()  # as a new task process would start
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


def aws_failure(err: Exception) -> EcrError:
    """What a real token source raises for a boto3 error (one classification: tokens/aws_errors.py)."""
    return token_error(classify(err, "https://api.ecr"), "fake", [REG])


def client_error(code: str, status: int) -> ClientError:
    response = {"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetAuthorizationToken")  # type: ignore[arg-type]


SERVICE_FAILURES = {
    "5xx": client_error("ServerException", 500),
    "throttled": client_error("ThrottlingException", 400),
    "unreachable": EndpointConnectionError(endpoint_url="https://api.ecr"),
    "read-timeout": ReadTimeoutError(endpoint_url="https://api.ecr"),
}
DENIALS = {
    "access-denied": client_error("AccessDeniedException", 400),
    "unrecognized-client": client_error("UnrecognizedClientException", 403),
    "invalid-key": client_error("InvalidClientTokenId", 403),
    "expired-credentials": client_error("ExpiredTokenException", 400),
    "unknown-4xx": client_error("SomeNewRefusal", 400),
}


@pytest.mark.parametrize("failure", list(SERVICE_FAILURES))
def test_falls_back_to_a_valid_cached_token_when_ecr_fails(tmp_path, caplog, failure):
    source = FakeSource(ttl=2.0)
    c = cache(tmp_path, refresh_ratio=0.1)
    first = c.get_one(source, REG)
    time.sleep(0.3)
    source.fail = aws_failure(SERVICE_FAILURES[failure])
    with caplog.at_level(logging.WARNING):
        assert c.get_one(source, REG) == first
    assert "Using cached ECR tokens" in caplog.text
    assert first.password not in caplog.text


@pytest.mark.parametrize("denial", list(DENIALS))
def test_a_denial_is_never_hidden_by_a_cached_token_and_drops_it(tmp_path, denial):
    """A revoked permission or deactivated key takes effect at the next refresh, not when the token expires."""
    source = FakeSource(ttl=100.0)
    c = cache(tmp_path, refresh_ratio=0.001)  # due at once, valid for 100 s
    c.get_one(source, REG)
    time.sleep(0.2)
    source.fail = aws_failure(DENIALS[denial])
    with pytest.raises(EcrError) as err:
        c.get_one(source, REG)
    assert err.value is source.fail
    if denial != "unknown-4xx":  # AWS refused the identity itself: its cached token goes too
        assert isinstance(err.value, EcrCredentialsError)
        assert not list((tmp_path / "cache").glob("*.json"))
        assert c.memory.read(TokenCache.key(source.identity, REG)) is None


@pytest.mark.parametrize("error", [RuntimeError("a bug"), EcrServiceError("no failure behind it")])
def test_an_error_that_is_not_an_aws_service_failure_serves_no_cached_token(tmp_path, error):
    source = FakeSource(ttl=100.0)
    c = cache(tmp_path, refresh_ratio=0.001)
    c.get_one(source, REG)
    time.sleep(0.2)
    source.fail = error
    with pytest.raises(type(error)):
        c.get_one(source, REG)


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
    c = TokenCache(EcrSettings(cache_enabled=False))
    c.get_one(source, REG)
    process_state.reset()
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
    process_state.reset()
    assert c.get_one(source, REG).password == "pw-id-a-2"
    assert json.loads(path.read_text())["password"] == "pw-id-a-2"  # rewritten


def test_group_readable_cache_file_is_ignored(tmp_path, caplog):
    source = FakeSource()
    c = cache(tmp_path)
    c.get_one(source, REG)
    (path,) = (tmp_path / "cache").glob("*.json")
    os.chmod(path, 0o644)
    process_state.reset()
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


def test_a_file_at_the_cache_location_disables_the_file_cache(tmp_path, caplog):
    """The directory rules are one walk: a task refuses what doctor and the helper refuse, once."""
    (tmp_path / "cache").write_text("")
    os.chmod(tmp_path / "cache", 0o600)
    source = FakeSource()
    with caplog.at_level(logging.WARNING):
        assert cache(tmp_path).get_one(source, REG)
    assert caplog.text.count("is not a directory") == 1  # once, not once per read, lock and write
    assert "Ignoring unreadable" not in caplog.text and "Cannot" not in caplog.text


def test_unwritable_cache_location_is_bypassed(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    source = FakeSource()
    c = TokenCache(EcrSettings(cache_dir=blocker / "cache"))
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
    process_state.reset()
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
        TokenCache.shared()


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
    process_state.reset()  # as a new task process would start
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
    process_state.reset()
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
    process_state.reset()
    c.get_one(source, REG)
    assert source.identity_reads > reads


def test_caches_with_other_settings_do_not_share_memory(tmp_path):
    source = FakeSource(ttl=1.0)
    eager = TokenCache(EcrSettings(cache_dir=None, refresh_ratio=0.01))
    lazy = TokenCache(EcrSettings(cache_dir=None, refresh_ratio=1.0))
    lazy.get_one(source, REG)
    time.sleep(0.05)
    eager.get_one(source, REG)  # its own memory: fetches instead of reusing lazy's token
    assert len(source.calls) == 2


def test_the_shared_cache_follows_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "one"))
    first = TokenCache.shared()
    assert TokenCache.shared() is first
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "two"))
    assert TokenCache.shared() is not first and TokenCache.shared().directory == tmp_path / "two"


def _in_threads(count: int, target: Any) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_waiters_on_a_holder_slower_than_lock_timeout_do_not_stampede(tmp_path):
    """ECR answering after 1.2 s, lock_timeout 0.5 s: 6 waiters (separate caches, as processes:
    flock is per open file) are served by the holder's fetch as it lands, plus one takeover, not 6 fetches."""
    delay, timeout = 1.2, 0.5
    source = FakeSource(delay=delay)
    served: list[float] = []
    started = time.monotonic()

    def task() -> None:
        cache(tmp_path, lock_timeout=timeout).get_one(source, REG)
        served.append(time.monotonic() - started)

    holder = _in_threads(1, task)
    while not source.calls:  # the holder is in its fetch
        time.sleep(0.01)
    waiters = _in_threads(6, task)
    for thread in holder + waiters:
        thread.join(10)
    assert len(served) == 7
    # the holder, and one waiter taking over after lock_timeout (the next takeover is at 3 timeouts)
    assert len(source.calls) == 2, source.calls
    # 5 waiters served as the holder's token landed (1.2 s), not after lock_timeout + a fetch (1.7 s)
    assert sorted(served)[5] < delay + 0.4, served


def test_a_waiter_with_a_usable_token_does_not_wait_for_anothers_refresh(tmp_path):
    source = FakeSource(ttl=100.0)
    first = cache(tmp_path, refresh_ratio=0.001).get_one(source, REG)
    time.sleep(0.2)  # due for refresh, valid for 100 s more
    source.delay = 1.0
    holder = _in_threads(1, lambda: cache(tmp_path, refresh_ratio=0.001).get_one(source, REG))
    while len(source.calls) < 2:  # the holder is in its (slow) refresh
        time.sleep(0.01)
    process_state.reset()  # as a new task process would start
    began = time.monotonic()
    assert cache(tmp_path, refresh_ratio=0.001).get_one(source, REG) == first
    assert time.monotonic() - began < 0.5
    assert len(source.calls) == 2  # the holder's refresh only
    holder[0].join(10)


def test_an_interrupted_write_leaves_no_temp_file_with_the_token(tmp_path, monkeypatch):
    """SIGTERM (a task timeout) raising in the middle of writing: the temp file goes too."""
    source = FakeSource()
    real_dump = json.dump

    def interrupted(data: Any, handle: Any) -> None:
        real_dump(data, handle)
        handle.flush()
        signal.raise_signal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("the task timed out")  # what Airflow's handler does: raise in the task

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    monkeypatch.setattr(json, "dump", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            cache(tmp_path).get_one(source, REG)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp-")]


def test_a_temp_file_left_by_a_killed_writer_is_swept(tmp_path):
    source = FakeSource()
    c = cache(tmp_path)
    c.get_one(source, REG)
    orphan = tmp_path / "cache" / ".tmp-killed.json"  # as SIGKILL mid-write leaves it
    orphan.write_text('{"password": "live"}')
    os.chmod(orphan, 0o600)
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    fresh = tmp_path / "cache" / ".tmp-writing.json"  # another process writing right now
    fresh.write_text("{}")
    c.get_one(source, REG2)  # the next write
    assert not orphan.exists() and fresh.exists()


def test_a_symlinked_cache_entry_is_not_followed(tmp_path):
    source = FakeSource()
    c = cache(tmp_path)
    other = c.get_one(source, REG2)
    (entry_b,) = (tmp_path / "cache").glob("*.json")
    entry_a = tmp_path / "cache" / f"{TokenCache.key(source.identity, REG)}.json"
    entry_a.symlink_to(entry_b)  # points at a private file of this user holding another token
    process_state.reset()
    assert c.get_one(source, REG) != other
    assert len(source.calls) == 2


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a symlink another owner")


@needs_root
def test_a_cache_dir_that_is_a_symlink_of_another_user_is_refused(tmp_path, caplog):
    """Whoever owns the link chooses where tokens go: another user's link is not followed, even to a private dir."""
    target = tmp_path / "private"
    target.mkdir(mode=0o700)
    link = tmp_path / "cache"
    link.symlink_to(target)
    os.lchown(link, 65534, 65534)
    source = FakeSource()
    with caplog.at_level(logging.WARNING):
        cache(tmp_path).get_one(source, REG)
    assert "is a symbolic link of another user" in caplog.text
    assert not list(target.iterdir())
    from airflow_ecr.doctor.cache import inspect_cache_dir

    found = inspect_cache_dir(link)  # doctor's wording of what FileStore.inspect found
    assert found.status == "warn" and "symbolic link of nobody" in found.summary


@pytest.mark.parametrize("target_mode", [0o777, 0o1777, 0o755])
def test_a_cache_dir_symlinked_to_an_open_directory_is_refused(tmp_path, target_mode):
    target = tmp_path / "open"
    target.mkdir()
    os.chmod(target, target_mode)
    (tmp_path / "cache").symlink_to(target)
    cache(tmp_path).get_one(FakeSource(), REG)
    assert not list(target.iterdir())
