"""
The cross-process lock of the host cache under a slow ECR (answers after 10 s), with real OS
processes (forked, each with an empty memory cache, as new task processes) sharing one cache directory:
16 waiting processes make one call between them, a lock holder killed mid-fetch (SIGKILL)
does not leave the others hanging, and a holder slower than lock_timeout is not stampeded.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr import process_state
from airflow_ecr.hooks.docker import EcrDockerHook
from helpers.airflow_harness import new_access_key
from helpers.reliability_support import CONN, aws_connection

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

DELAY = 10.0
CTX = multiprocessing.get_context("fork")  # real processes, without 16 slow interpreter start-ups


def _task_process(env: dict[str, str], host: str, go: Any, results: Any) -> None:
    """One task process asking for the registry's login once ``go`` is set; reports when it had the
    token and a hash of the password (never the password itself)."""
    os.environ.update(env)
    process_state.reset()  # a new task process starts with an empty memory cache
    hook = EcrDockerHook(registry=host, aws_conn_id=CONN)
    results.put(("ready", os.getpid(), 0.0, ""))
    go.wait()
    password = hook.registry_auth()["password"]
    results.put(("got", os.getpid(), time.time(), hashlib.sha256(password.encode()).hexdigest()))


class TaskProcesses:
    """Task processes sharing one host cache directory, started and released together."""

    def __init__(self, lab: Any, cache_dir: Path, count: int, lock_timeout: float = 60) -> None:
        self.access_key = new_access_key()
        env = {
            f"AIRFLOW_CONN_{CONN.upper()}": aws_connection(
                lab.emulator_url, self.access_key, config_kwargs={"retries": {"total_max_attempts": 1}}
            ),
            "AIRFLOW__ECR__CACHE_DIR": str(cache_dir),
            "AIRFLOW__ECR__LOCK_TIMEOUT": str(lock_timeout),
        }
        self.results = CTX.Queue()
        self.go = [CTX.Event() for _ in range(count)]
        self.procs = [
            CTX.Process(target=_task_process, args=(env, lab.accounts[0]["host"], go, self.results)) for go in self.go
        ]
        for proc in self.procs:
            proc.start()
        ready = [self.results.get(timeout=60) for _ in self.procs]
        assert all(kind == "ready" for kind, *_ in ready), ready

    def release(self, indexes: range | None = None) -> None:
        for index in indexes or range(len(self.go)):
            self.go[index].set()

    def collect(self, count: int, timeout: float) -> list[tuple[int, float, str]]:
        """``count`` results: (pid, time it had the token, password hash)."""
        got = [self.results.get(timeout=timeout) for _ in range(count)]
        return [(pid, at, digest) for _, pid, at, digest in got]

    def stop(self, grace: float = 10) -> None:
        """Let the processes exit on their own (they end after reporting), kill what is left."""
        deadline = time.monotonic() + grace
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(10)


def lock_holders() -> set[int]:
    """Pids holding a flock, from /proc/locks."""
    pids = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields:  # "->" marks a waiter, not a holder
            pids.add(int(fields[fields.index("FLOCK") + 3]))
    return pids


def test_16_processes_waiting_on_a_slow_ecr_make_one_call(lab, emulator, tmp_path):
    emulator.faults(delay=DELAY)
    procs = TaskProcesses(lab, tmp_path / "cache", 16)
    try:
        procs.release()
        results = procs.collect(16, timeout=DELAY * 4)
    finally:
        procs.stop()
    calls = emulator.calls(access_key=procs.access_key)
    print(f"16 processes, ECR answering after {DELAY:.0f} s: {len(calls)} call(s)")
    assert len(calls) == 1 and calls[0]["outcome"] == "ok", calls
    assert len({digest for *_, digest in results}) == 1
    assert all(proc.exitcode == 0 for proc in procs.procs)
    assert hashlib.sha256(emulator.password(lab.accounts[0]["account_id"]).encode()).hexdigest() == results[0][2]


def test_lock_holder_killed_mid_fetch_does_not_leave_the_others_hanging(lab, emulator, tmp_path):
    emulator.faults(delay=DELAY)
    procs = TaskProcesses(lab, tmp_path / "cache", 16, lock_timeout=120)
    holder = procs.procs[0]
    try:
        procs.release(range(1))
        deadline = time.monotonic() + 5
        while holder.pid not in lock_holders():  # the holder is now in its 10 s GetAuthorizationToken
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.02)
        procs.release(range(1, 16))
        time.sleep(4)  # the holder is inside its GetAuthorizationToken call (checked below)
        assert holder.pid in lock_holders() and holder.is_alive()  # the 15 others wait on it
        holder.kill()  # SIGKILL
        killed_at = time.time()
        # One of the others takes the lock at once (the kernel drops a dead holder's flock) and
        # fetches (10 s); the rest are served by what it cached.
        results = procs.collect(15, timeout=DELAY * 4)
    finally:
        procs.stop()
    assert holder.exitcode == -signal.SIGKILL
    waited = max(at for _, at, _ in results) - killed_at
    print(f"lock holder SIGKILLed: the 15 others had the token {waited:.1f} s later (lock_timeout 120 s)")
    assert waited < DELAY + 10, waited  # far below the 120 s lock_timeout: no one waited it out
    assert len({digest for *_, digest in results}) == 1
    # The killed holder's call (answered after the delay to a dead client), then one more.
    calls = emulator.calls(access_key=procs.access_key)
    assert len(calls) == 2, calls
    assert calls[0]["time"] < killed_at < calls[1]["time"], (killed_at, calls)  # killed mid-call


def test_waiters_on_a_holder_slower_than_lock_timeout_do_not_stampede(lab, emulator, tmp_path):
    # ECR answers after 3 s, lock_timeout is 2 s: before, the 7 waiters gave up at 2 s and all
    # fetched (8 calls, served after 5 s). Now they re-check the cache as they wait and are served
    # when the holder's token lands (3 s); one waiter takes over after lock_timeout (the next
    # takeover would be after 3 lock_timeouts).
    delay, timeout = 3.0, 2.0
    emulator.faults(delay=delay)
    procs = TaskProcesses(lab, tmp_path / "cache", 8, lock_timeout=timeout)
    try:
        procs.release(range(1))
        deadline = time.monotonic() + 5
        while procs.procs[0].pid not in lock_holders():
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.02)
        released = time.time()
        procs.release(range(1, 8))
        results = procs.collect(8, timeout=delay * 4)
    finally:
        procs.stop()
    calls = emulator.calls(access_key=procs.access_key)
    served = sorted(at - released for _, at, _ in results)
    print(
        f"8 processes, ECR answering after {delay:.0f} s, lock_timeout {timeout:.0f} s: {len(calls)} call(s), "
        f"served after {[round(s, 1) for s in served]} s"
    )
    assert len(calls) == 2, calls  # the holder's and one takeover's, not one per waiter
    landed = calls[0]["time"] + delay - released  # the holder's answer (after its client was made)
    assert served[6] < landed + 1.0, (landed, served)  # all but the takeover: as the holder's token landed
    assert all(proc.exitcode == 0 for proc in procs.procs)
