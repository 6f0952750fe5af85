"""
A cold fleet against ECR's rate limit, for real: the lab's ECR emulator with its token bucket shrunk
to 10 calls at once and 5 per second (ECR's own is 200 and 20: the same shape, 20x smaller, so the
test stays short), and 40 task processes (forked, as new task processes: empty memory cache) each
standing for a host of its own (own cache directory, own access key of one account), all asking for
the registry's login at the same moment. Real boto3, real retries, real HTTP.

With airflow-ecr's retry policy (``[ecr] token_retry_mode`` standard, ``token_max_attempts`` 7:
full-jitter backoff, at most 51 s of waiting) every task gets its token; with botocore's default
of 3 attempts (what the token call had before), some fail (checked once, see the test).
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr import process_state
from airflow_ecr.hooks.docker import EcrDockerHook
from helpers.reliability_support import CONN, aws_connection

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

HOSTS = 40
CAPACITY, REFILL = 10, 5.0
CTX = multiprocessing.get_context("fork")  # real processes, without 40 interpreter start-ups


def _task_process(env: dict[str, str], host: str, go: Any, results: Any) -> None:
    """One task process on its own host: asks for the registry's login once ``go`` is set."""
    os.environ.update(env)
    process_state.reset()
    hook = EcrDockerHook(registry=host, aws_conn_id=CONN)
    results.put(("ready", ""))
    go.wait()
    try:
        assert hook.registry_auth()["username"] == "AWS"
        results.put(("ok", ""))
    except Exception as exc:  # what the task would fail with (its message names no secret)
        results.put(("failed", f"{type(exc).__name__}: {str(exc)[:300]}"))


def cold_fleet(lab: Any, tmp_path: Path, name: str, settings: dict[str, str]) -> dict[str, Any]:
    """``HOSTS`` hosts of one process each, released together; their outcomes and the ECR calls."""
    prefix = f"FLEET{secrets.token_hex(4).upper()}{name.upper()[:3]}"  # one account, a key per host
    keys = [f"{prefix}{index:03d}" for index in range(HOSTS)]
    go = CTX.Event()
    results = CTX.Queue()
    procs = []
    for index, key in enumerate(keys):
        env = {
            f"AIRFLOW_CONN_{CONN.upper()}": aws_connection(lab.emulator_url, key),
            "AIRFLOW__ECR__CACHE_DIR": str(tmp_path / name / f"host-{index}"),
            **settings,
        }
        procs.append(CTX.Process(target=_task_process, args=(env, lab.accounts[0]["host"], go, results)))
    for proc in procs:
        proc.start()
    try:
        assert [results.get(timeout=60)[0] for _ in procs] == ["ready"] * HOSTS
        released = time.monotonic()
        go.set()
        outcomes = [results.get(timeout=120) for _ in procs]
        seconds = time.monotonic() - released
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(10)
    return {"outcomes": outcomes, "seconds": seconds, "keys": set(keys)}


def test_a_cold_fleet_rides_out_the_rate_limit(lab, emulator, tmp_path):
    """
    Checked once with ``AIRFLOW__ECR__TOKEN_MAX_ATTEMPTS=3`` (botocore's default, the policy before
    this one) in ``cold_fleet``'s settings: 11 of the 40 tasks failed, each with the throttling
    error (57 throttled calls of 86); with the defaults, none does.
    """
    emulator.config(bucket_capacity=CAPACITY, bucket_refill=REFILL)
    emulator.reset()  # a full bucket
    run = cold_fleet(lab, tmp_path, "fleet", {})
    calls = [c for c in emulator.calls() if c["access_key_id"] in run["keys"]]
    counted = Counter(outcome for outcome, _ in run["outcomes"])
    figures = {
        "tasks_ok": counted["ok"],
        "tasks_failed": counted["failed"],
        "ecr_calls": len(calls),
        "throttled": sum(1 for c in calls if c["outcome"] == "ThrottlingException"),
        "seconds": round(run["seconds"], 1),
        "first_failure": next((text for outcome, text in run["outcomes"] if outcome == "failed"), ""),
    }
    print(f"\n{HOSTS} cold hosts against a bucket of {CAPACITY}, {REFILL:g}/s: {figures}")
    assert figures["tasks_failed"] == 0 and figures["tasks_ok"] == HOSTS, figures
    # It was the bucket: calls were throttled and retried (one call per host besides), within the bound.
    assert figures["throttled"] > 0 and figures["ecr_calls"] == HOSTS + figures["throttled"], figures
    assert figures["seconds"] < 51 + 20, figures
