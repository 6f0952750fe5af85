"""
ECR misbehaving, against the real lab (ECR emulator over HTTP, real boto3 and its retry policy,
real Docker engine and registry): throttling, outages and unreachable endpoints with and without a
cached token, and tokens already expired on arrival (clock skew).
"""

from __future__ import annotations

import itertools
import json
import time

import pytest

from airflow_ecr.exceptions import EcrCredentialsError, EcrServiceError
from helpers.processes import free_port
from helpers.reliability_support import CONN, Recorder, TcpForwarder, assert_clean_error, lab_task

pytestmark = pytest.mark.lab
__all__ = ["lab_task"]  # the fixture, imported for pytest


# -- throttling --------------------------------------------------------------------------------
def test_throttled_beyond_the_retry_limit_fails_clearly_after_exactly_max_attempts(lab_task):
    # [ecr] token_max_attempts = 3 keeps the test short (the default 7 waits up to 51 s).
    lab_task.monkeypatch.setenv("AIRFLOW__ECR__TOKEN_MAX_ATTEMPTS", "3")
    lab_task.emulator.faults(throttle=50)
    with pytest.raises(EcrServiceError) as err:
        lab_task.run()
    calls = lab_task.calls()
    # [ecr] token_max_attempts (botocore's standard mode): 3 attempts in all, then it gives up: no hot loop.
    assert [c["outcome"] for c in calls] == ["ThrottlingException"] * 3, calls
    assert_clean_error(
        err.value,
        "throttled ecr:GetAuthorizationToken",
        "ThrottlingException, 3 attempt(s) with backoff",
        f"aws_conn_id='{CONN}'",
        f"at {lab_task.lab.emulator_url}",
        '"config_kwargs": {"retries"',
    )


def test_throttled_for_the_first_calls_succeeds_with_backoff_and_the_advised_retries(lab_task):
    # What the error above advises: more attempts in the connection's config_kwargs.
    lab_task.connect(config_kwargs={"retries": {"mode": "standard", "max_attempts": 6}})
    k = 4
    lab_task.emulator.faults(throttle=k)
    assert lab_task.run() == "ran"
    calls = lab_task.calls()
    assert [c["outcome"] for c in calls] == ["ThrottlingException"] * k + ["ok"], calls
    times = [c["time"] for c in calls]
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
    print(f"throttled {k} times: {len(calls)} calls, gaps {gaps} s")
    # Exponential backoff with full jitter (up to 1, 2, 4, 8 s): 7.5 s expected; a hot loop takes
    # milliseconds. Under 0.5 s by chance has a probability of about 4e-5.
    assert times[-1] - times[0] >= 0.5, gaps


# -- ECR failing or unreachable ------------------------------------------------------------------
def test_ecr_unreachable_with_a_valid_cached_token_runs_on_it_and_warns(lab_task):
    forwarder = TcpForwarder(lab_task.lab.emulator_url.removeprefix("http://"))
    try:
        lab_task.connect(endpoint_url=forwarder.url, config_kwargs={"retries": {"total_max_attempts": 1}})
        assert lab_task.run() == "ran"
        (cached,) = lab_task.cache_files()
        before = cached.read_text()
    finally:
        forwarder.close()  # ECR is now unreachable at the connection's endpoint
    # The token is due for refresh (ratio tiny) but still valid.
    lab_task.monkeypatch.setenv("AIRFLOW__ECR__REFRESH_RATIO", "0.000001")
    with Recorder("airflow_ecr.tokens") as log:
        assert lab_task.run() == "ran"
    assert "Using cached ECR tokens" in log.text() and f"Cannot reach the ECR API at {forwarder.url}" in log.text()
    assert len(lab_task.calls()) == 1
    assert cached.read_text() == before  # nothing rewritten


@pytest.mark.parametrize(
    ("refusal", "code"),
    [
        ("deny", "AccessDeniedException"),
        ("invalid_keys", "UnrecognizedClientException"),
        ("expired_keys", "ExpiredTokenException"),
    ],
)
def test_access_denied_or_rejected_credentials_with_a_cached_token_fail_and_drop_it(lab_task, refusal, code):
    # A revoked permission or a deactivated key must not stay hidden behind a cached token.
    assert lab_task.run() == "ran"
    assert len(lab_task.cache_files()) == 1
    lab_task.monkeypatch.setenv("AIRFLOW__ECR__REFRESH_RATIO", "0.000001")  # due, still valid
    lab_task.emulator.faults(**{refusal: True if refusal == "deny" else [lab_task.access_key]})
    with pytest.raises(EcrCredentialsError):
        lab_task.run()
    assert [c["outcome"] for c in lab_task.calls()] == ["ok", code]
    assert lab_task.cache_files() == []  # dropped: the next task asks AWS again


def test_ecr_unreachable_without_a_cached_token_names_the_endpoint(lab_task):
    dead = f"http://127.0.0.1:{free_port()}"
    lab_task.connect(endpoint_url=dead, config_kwargs={"retries": {"total_max_attempts": 1}})
    with pytest.raises(EcrServiceError) as err:
        lab_task.run()
    assert_clean_error(err.value, f"Cannot reach the ECR API at {dead}", f"aws_conn_id='{CONN}'", "endpoint_url")
    assert lab_task.cache_files() == []


def test_ecr_5xx_without_a_cached_token_names_the_endpoint_and_the_attempts(lab_task):
    lab_task.monkeypatch.setenv("AIRFLOW__ECR__TOKEN_MAX_ATTEMPTS", "3")  # short, as above
    lab_task.emulator.faults(server_error=10)
    with pytest.raises(EcrServiceError) as err:
        lab_task.run()
    assert [c["outcome"] for c in lab_task.calls()] == ["ServerException"] * 3
    assert_clean_error(
        err.value,
        f"The ECR API failed for registry {lab_task.lab.accounts[0]['host']}",
        f"at {lab_task.lab.emulator_url} (3 attempt(s))",
        "ServerException",
    )


# -- clock skew ----------------------------------------------------------------------------------
def test_token_expired_on_arrival_serves_that_call_only_and_is_never_cached(lab_task):
    # The host clock runs a day ahead of AWS: every expiresAt is already past on arrival, although
    # the registry accepts the token.
    lab_task.emulator.faults(clock_skew=86400)
    with Recorder("airflow_ecr.tokens") as log:
        assert lab_task.run() == "ran"
        assert lab_task.run() == "ran"
    assert [c["outcome"] for c in lab_task.calls()] == ["ok", "ok"]  # not cached: fetched again
    assert lab_task.cache_files() == []
    assert log.text().count("already past by this host's clock") == 2, log.text()
    # The control: without skew the second task is served by the cache.
    lab_task.emulator.faults(clock_skew=0)
    lab_task.run()
    lab_task.run()
    assert len(lab_task.calls()) == 3
    assert len(lab_task.cache_files()) == 1
    assert json.loads(lab_task.cache_files()[0].read_text())["expires_at"] > time.time()
