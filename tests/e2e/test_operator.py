"""
EcrDockerOperator, its hook and the token cache against the real lab: a Docker engine, registries
that demand ECR-style basic auth by their real names, and the ECR emulator over HTTP.

Each ``task()`` call clears the process memory cache first, as a new Airflow task process starts
with an empty one; what survives is the host file cache, as on a worker.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import multiprocessing
import time
from pathlib import Path

import docker
import pytest

from airflow_ecr import process_state
from airflow_ecr.exceptions import (
    DockerDaemonError,
    EcrConfigurationError,
    EcrCredentialsError,
    EcrPullError,
    EcrServiceError,
)
from airflow_ecr.operators.docker import EcrDockerOperator, EcrDockerSwarmOperator
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.store import FileStore
from airflow_ecr.tokens.token import secret_forms

pytestmark = pytest.mark.lab

CONN = "aws_lab"


def image_of(lab, account_index: int = 0, name: str = "lab/busybox:1") -> str:
    return f"{lab.accounts[account_index]['host']}/{name}"


def remove_local(lab, image: str) -> None:
    client = docker.APIClient(base_url=lab.docker_host)
    with contextlib.suppress(docker.errors.NotFound):
        client.remove_image(image, force=True)


def task(lab, image: str, **kwargs):
    """Run one EcrDockerOperator as a fresh task process would (empty memory cache)."""
    process_state.reset()
    kwargs.setdefault("command", ["echo", "ran"])
    op = EcrDockerOperator(
        task_id=f"t{time.monotonic_ns()}",
        image=image,
        aws_conn_id=CONN,
        docker_url=lab.docker_host,
        network_mode="none",
        force_pull=kwargs.pop("force_pull", True),
        auto_remove="success",
        **kwargs,
    )
    return op.execute({})


def registry_requests(lab, account_index: int = 0) -> int:
    log = Path(lab.raw["dir"]) / "registries" / lab.accounts[account_index]["account_id"] / "registry.log"
    return log.read_text().count('msg="response completed"')


def test_pulls_and_runs_from_two_accounts_by_their_real_names(lab, aws):
    for index in (0, 1):
        image = image_of(lab, index, "app/hello:1")
        remove_local(lab, image)
        assert task(lab, image, command=["echo", f"hello {index}"]) == f"hello {index}"
    calls = aws.calls()
    assert [(c["region"], c["registry_ids"]) for c in calls] == [
        ("eu-west-1", ["111111111111"]),
        ("us-east-1", ["222222222222"]),
    ]


def test_image_already_local_makes_no_aws_and_no_registry_call(lab, aws):
    image = image_of(lab)
    task(lab, image)  # now local
    aws.reset()
    before = registry_requests(lab)
    assert task(lab, image, force_pull=False) == "ran"
    assert aws.calls() == []
    assert registry_requests(lab) == before
    # The check can fail: a forced pull does reach both.
    task(lab, image, force_pull=True)
    assert registry_requests(lab) > before


def test_second_task_process_is_served_by_the_host_cache(lab, aws):
    image = image_of(lab)
    with Recorder("airflow_ecr.tokens") as log:
        task(lab, image)
        task(lab, image)
    assert len(aws.calls()) == 1
    # Each task says where its token came from (and never shows it).
    host = lab.accounts[0]["host"]
    lines = [m for m in log.messages if m.startswith(f"ECR login for {host}: token from ")]
    assert [line.split("token from ")[1].split(",")[0] for line in lines] == ["ECR (fetched now)", "the host cache"]
    password = aws.password(lab.accounts[0]["account_id"])
    assert all(form not in m for form in secret_forms(password) for m in log.messages)


def test_tokens_rotating_every_few_seconds_one_call_per_lifetime(lab, aws, monkeypatch):
    # The exact refresh point, without the fleet jitter that may bring it forward (refresh_jitter).
    monkeypatch.setenv("AIRFLOW__ECR__REFRESH_JITTER", "0")
    ttl = 3.0
    aws.config(token_ttl=ttl)
    aws.revoke(lab.accounts[0]["account_id"])  # start from a token of the short lifetime
    image = image_of(lab)
    start = time.monotonic()
    longest_task = 0.0
    tasks = 0
    while time.monotonic() - start < 4 * ttl:  # tasks spanning four token lifetimes
        began = time.monotonic()
        assert task(lab, image) == "ran"
        longest_task = max(longest_task, time.monotonic() - began)
        tasks += 1
    calls = [c["time"] for c in aws.calls()]
    assert all(c["outcome"] == "ok" for c in aws.calls())
    assert tasks > 3 * len(calls) / 2
    # refresh_ratio 0.5: a token is refreshed once half its life is gone, by the first task after
    # that point, and by that task only: consecutive calls are half a lifetime (+ one task) apart.
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    print(f"rotation: {tasks} tasks over {4 * ttl:.0f} s of {ttl:.0f} s tokens -> {len(calls)} ECR calls, gaps {gaps}")
    span = 4 * ttl
    assert len(calls) >= 1 + int(span // (ttl / 2 + longest_task + 0.2)), (len(calls), longest_task)
    assert all(ttl / 2 - 0.1 <= gap <= ttl / 2 + longest_task + 0.2 for gap in gaps), (gaps, longest_task)


def test_revoked_token_is_refetched_once_and_the_pull_retried(lab, aws):
    image = image_of(lab)
    task(lab, image)
    aws.revoke(lab.accounts[0]["account_id"])  # the cached token now fails at the registry
    aws.reset()
    with Recorder("airflow_ecr.hooks.docker") as log:
        assert task(lab, image) == "ran"
    print(f"revocation: {len(aws.calls())} ECR call(s) to recover")
    assert len(aws.calls()) == 1
    assert any("rejected the ECR token" in m for m in log.messages)


def test_registry_rejecting_a_fresh_token_too_fails_clearly_without_a_loop(lab, aws, monkeypatch):
    image = image_of(lab)
    task(lab, image)
    # Every token ECR hands out is revoked before the pull uses it.
    original = TokenCache._fetch

    def fetch_then_revoke(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        aws.revoke(lab.accounts[0]["account_id"])
        return result

    monkeypatch.setattr(TokenCache, "_fetch", fetch_then_revoke)
    aws.revoke(lab.accounts[0]["account_id"])
    aws.reset()
    with pytest.raises(EcrPullError, match="rejected a freshly fetched token too"):
        task(lab, image)
    assert len(aws.calls()) == 1


def _resolve_in_child(conn_env: str, cache_dir: str, host: str, barrier, results) -> None:
    import os

    os.environ[f"AIRFLOW_CONN_{CONN.upper()}"] = conn_env
    os.environ["AIRFLOW__ECR__CACHE_DIR"] = cache_dir
    from airflow_ecr.hooks.docker import EcrDockerHook

    process_state.reset()
    hook = EcrDockerHook(registry=host, aws_conn_id=CONN)
    barrier.wait()
    results.put(hook.registry_auth()["password"])


def resolve_concurrently(lab, tmp_path, processes: int) -> list[str]:
    """``processes`` forked task processes resolve the same registry at the same instant."""
    import os

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    args = (
        os.environ[f"AIRFLOW_CONN_{CONN.upper()}"],
        os.environ["AIRFLOW__ECR__CACHE_DIR"],
        lab.accounts[0]["host"],
        barrier,
        results,
    )
    children = [ctx.Process(target=_resolve_in_child, args=args) for _ in range(processes)]
    for child in children:
        child.start()
    passwords = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    return passwords


def test_32_processes_on_a_cold_host_make_one_call(lab, aws, tmp_path):
    aws.faults(delay=0.3)  # a slow answer widens the window in which the others must wait
    passwords = resolve_concurrently(lab, tmp_path, 32)
    print(f"32 processes, cold host cache: {len(aws.calls())} ECR call(s)")
    assert len(aws.calls()) == 1
    assert len(set(passwords)) == 1


def test_32_processes_without_the_lock_would_make_several_calls(lab, aws, tmp_path, monkeypatch):
    """Shows the test above can fail: with the cross-process lock disabled, calls multiply."""
    from contextlib import contextmanager

    @contextmanager
    def no_lock(self, name, timeout, ready=None):
        yield "unavailable"

    monkeypatch.setattr(FileStore, "lock", no_lock)
    aws.faults(delay=0.3)
    resolve_concurrently(lab, tmp_path, 32)
    print(f"32 processes, lock disabled: {len(aws.calls())} ECR calls")
    assert len(aws.calls()) > 1


def test_swarm_service_pulls_from_ecr_with_the_service_auth(lab, aws):
    image = image_of(lab, 1, "app/hello:1")
    remove_local(lab, image)
    op = EcrDockerSwarmOperator(
        task_id="swarm",
        image=image,
        aws_conn_id=CONN,
        docker_url=lab.docker_host,
        command=["echo", "hello from a swarm service"],
        enable_logging=True,
        auto_remove="success",
    )
    with Recorder("airflow_ecr.tokens") as log:
        op.execute({})
    assert op.service is not None
    assert [c["registry_ids"] for c in aws.calls()] == [["222222222222"]]
    host = lab.accounts[1]["host"]
    assert (
        [m for m in log.messages if m.startswith("ECR login for ")]
        == [
            m for m in log.messages if m.startswith(f"ECR login for {host}: token from ECR (fetched now), valid until ")
        ]
        != []
    )


# --- bad input: each an AirflowException subclass with one actionable sentence ---------------


def test_access_denied_names_the_action_and_the_connection(lab, aws):
    aws.faults(deny=True)
    image = image_of(lab)
    remove_local(lab, image)
    with pytest.raises(EcrCredentialsError) as err:
        task(lab, image)
    assert "ecr:GetAuthorizationToken" in str(err.value)
    assert CONN in str(err.value)


def test_no_aws_credentials_says_where_to_put_them(lab, aws, monkeypatch, tmp_path):
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN.upper()}",
        json.dumps({"conn_type": "aws", "extra": {"region_name": "eu-west-1", "endpoint_url": lab.emulator_url}}),
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    image = image_of(lab)
    remove_local(lab, image)
    with pytest.raises(EcrCredentialsError, match="No AWS credentials found for aws_conn_id='aws_lab'"):
        task(lab, image)


def test_ecr_outage_without_a_cached_token_names_the_endpoint(lab, aws):
    aws.faults(server_error=5)
    image = image_of(lab)
    remove_local(lab, image)
    with pytest.raises(EcrServiceError, match="ECR API failed for registry 111111111111"):
        task(lab, image)


class Recorder(logging.Handler):
    """Collects the records of one logger (Airflow's task logging bypasses pytest's caplog)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Recorder:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)


def test_ecr_outage_with_a_valid_cached_token_still_runs(lab, aws, monkeypatch):
    image = image_of(lab)
    task(lab, image)
    monkeypatch.setenv("AIRFLOW__ECR__REFRESH_RATIO", "0.000001")  # refresh after 43 ms of a 12 h token
    aws.faults(server_error=5)
    with Recorder("airflow_ecr.tokens") as log:
        assert task(lab, image) == "ran"
    assert any("Using cached ECR tokens" in m for m in log.messages)


def test_unreachable_daemon_says_which_url(lab, aws, tmp_path):
    url = f"unix://{tmp_path}/no-such.sock"
    op = EcrDockerOperator(task_id="t", image=image_of(lab), aws_conn_id=CONN, docker_url=url)
    with pytest.raises(DockerDaemonError, match=f"Cannot reach the Docker daemon at {url}"):
        op.execute({})
    assert aws.calls() == []


def test_missing_tag_is_reported_as_not_found(lab, aws):
    with pytest.raises(EcrPullError, match="was not found in 111111111111"):
        task(lab, image_of(lab, 0, "lab/busybox:no-such-tag"))
    assert len(aws.calls()) == 1  # not mistaken for a credentials problem: no refetch


def test_registry_in_an_unknown_region_is_refused_clearly(lab, aws):
    image = "111111111111.dkr.ecr.ap-south-2.amazonaws.com/lab/busybox:1"
    with pytest.raises(EcrCredentialsError, match="ECR refused the request for registry"):
        task(lab, image)


def test_ecr_docker_connection_supplies_the_ecr_settings(lab, aws, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ECR_LAB", json.dumps({"conn_type": "ecr_docker", "extra": {"aws_conn_id": CONN}}))
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    op = EcrDockerOperator(
        task_id="via_conn",
        image=image_of(lab, 0, "app/hello:1"),
        docker_conn_id="ecr_lab",  # aws_conn_id left at its default: the connection names it
        docker_url=lab.docker_host,
        network_mode="none",
        command=["echo", "via ecr_docker"],
        force_pull=True,
        auto_remove="success",
    )
    assert op.execute({}) == "via ecr_docker"
    assert [c["access_key_id"] for c in aws.calls()] == ["testing"]


def test_cross_account_registry_ids_share_one_api_call(monkeypatch, tmp_path):
    from airflow_ecr.hooks.docker import EcrDockerHook
    from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount

    accounts = [EmulatedAccount("111111111111", "eu-west-1"), EmulatedAccount("333333333333", "eu-west-1")]
    with EcrEmulator(accounts) as emulator:
        extra = {"region_name": "eu-west-1", "endpoint_url": emulator.url}
        conn = {"conn_type": "aws", "login": "k", "password": "s", "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_X", json.dumps(conn))
        monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path))
        process_state.reset()
        hook = EcrDockerHook(image=f"{accounts[0].host}/app:1", aws_conn_id="aws_x", registry_ids=["333333333333"])
        main, other = hook.registry_auth(), hook.registry_auth(accounts[1].host)
        assert (main["serveraddress"], other["serveraddress"]) == (accounts[0].host, accounts[1].host)
        assert main["password"] != other["password"]
        assert [c["registry_ids"] for c in emulator.calls()] == [["111111111111", "333333333333"]]


def test_ecr_docker_connection_with_unknown_fields_is_refused(lab, aws, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ECR_BAD", json.dumps({"conn_type": "ecr_docker", "extra": {"regoin": "x"}}))
    op = EcrDockerOperator(task_id="bad", image=image_of(lab), docker_conn_id="ecr_bad", docker_url=lab.docker_host)
    with pytest.raises(EcrConfigurationError, match="unknown extra fields \\['regoin'\\]"):
        op.execute({})


def test_ecr_public_tokens_come_from_ecr_public_in_us_east_1(monkeypatch, tmp_path):
    from airflow_ecr.hooks.docker import EcrDockerHook
    from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount

    with EcrEmulator([EmulatedAccount("111111111111", "eu-west-1")]) as emulator:
        extra = {"region_name": "eu-west-1", "endpoint_url": emulator.url}
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_X", json.dumps({"conn_type": "aws", "login": "k", "password": "s", "extra": extra})
        )
        monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path))
        process_state.reset()
        hook = EcrDockerHook(image="public.ecr.aws/docker/library/busybox:1.36", aws_conn_id="aws_x")
        assert hook.registry_auth()["serveraddress"] == "public.ecr.aws"
        assert [(c["target"], c["region"]) for c in emulator.calls()] == [
            ("SpencerFrontendService.GetAuthorizationToken", "us-east-1")
        ]
