"""
Token provenance: one INFO line per handed-out token, in every mode, naming the registry, where the
token came from (memory, the host cache, or ECR now), until when it is valid (UTC) and the short
form of the identity; never any form of the token. Real boto3 over HTTP to the in-process emulator.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from airflow_ecr import process_state
from airflow_ecr.connections import refresh_docker_connections
from airflow_ecr.hooks.docker import EcrAPIClient, EcrDockerHook
from airflow_ecr.registry import parse_registry_host
from airflow_ecr.secrets.ecr import EcrDockerConnectionBackend
from airflow_ecr.settings import EcrSettings
from airflow_ecr.testing import running_task
from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount
from airflow_ecr.tokens.cache import IDENTITY_SHORT, TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource
from airflow_ecr.tokens.token import EcrToken, secret_forms, utc_time
from helpers.isolation import aws_test_connection, isolate_from_host

ACCOUNT, REGION = "111111111111", "eu-west-1"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
REGISTRY = parse_registry_host(HOST)
LINE = re.compile(
    r"ECR login for (?P<host>\S+?)(?: \((?P<requester>[^)]*)\))?: token from (?P<origin>.+), "
    r"valid until (?P<until>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ), identity (?P<identity>[0-9a-f]+)\.$"
)


@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCOUNT, REGION)]) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _isolated(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A private host cache, empty memory, an ``aws_test`` connection to the emulator."""
    isolate_from_host(monkeypatch, tmp_path, "AIRFLOW_CONN_", "AIRFLOW__SECRETS__", "DOCKER_")
    aws_test_connection(monkeypatch, emu.url, "AKIAPROVENANCE", REGION)
    emu.reset()
    emu.configure(token_ttl=43200, rotate_fraction=0.5)  # ECR's token policy; kept by reset()
    emu.revoke(ACCOUNT)  # each test's first call mints a token under that policy


@pytest.fixture
def cache(tmp_path: Path) -> TokenCache:
    return TokenCache(EcrSettings(cache_dir=tmp_path / "cache"))


@pytest.fixture
def source() -> EcrTokenSource:
    return EcrTokenSource.from_connection("aws_test")


def provenance(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    """The provenance lines logged at INFO, as their fields."""
    found = [LINE.match(r.getMessage()) for r in caplog.records if r.levelno == logging.INFO]
    return [m.groupdict() for m in found if m]


def assert_no_token(caplog: pytest.LogCaptureFixture, token: EcrToken, emu: EcrEmulator) -> None:
    """Neither the password nor ECR's authorizationToken, plain, base64 or URL-encoded, in any record."""
    text = "\n".join(r.getMessage() for r in caplog.records)
    forms = secret_forms(token.password, token.username)
    assert token.password in forms and len(forms) >= 2  # the password, its base64, any URL-encoded forms
    assert [form for form in forms if form in text] == []
    assert token.password == emu.password(ACCOUNT)[0]  # the real token, not a stand-in


def test_each_origin_is_named_with_registry_expiry_in_utc_and_the_identity(
    emu: EcrEmulator, cache: TokenCache, source: EcrTokenSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airflow_ecr")
    fetched = cache.get_one(source, REGISTRY)
    from_memory = cache.get_one(source, REGISTRY)
    process_state.reset()  # a new task process on the same host
    from_file = TokenCache(cache.settings).get_one(source, REGISTRY)
    lines = provenance(caplog)
    assert [line["origin"] for line in lines] == ["ECR (fetched now)", "memory", "the host cache"]
    assert {line["host"] for line in lines} == {HOST}
    assert {line["until"] for line in lines} == {utc_time(fetched.expires_at)}
    assert from_memory == fetched and from_file.password == fetched.password
    # The identity's short form is the start of the identity the token is cached under, not all of it.
    assert {line["identity"] for line in lines} == {source.identity[:IDENTITY_SHORT]}
    assert len(emu.calls()) == 1
    assert_no_token(caplog, fetched, emu)


def test_a_token_kept_while_ecr_fails_says_so(
    emu: EcrEmulator,
    tmp_path: Path,
    source: EcrTokenSource,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__TOKEN_MAX_ATTEMPTS", "1")  # the failure at once, no backoff
    emu.configure(token_ttl=100)
    cache = TokenCache(EcrSettings(cache_dir=tmp_path / "cache", refresh_ratio=0.001))  # due after 0.1 s
    token = cache.get_one(source, REGISTRY)
    time.sleep(0.2)
    emu.set_faults(server_error=100)
    caplog.set_level(logging.INFO, logger="airflow_ecr")
    caplog.clear()
    assert cache.get_one(source, REGISTRY) == token
    assert emu.calls()[-1]["outcome"] == "ServerException"  # a refresh was tried, and failed
    (line,) = provenance(caplog)
    assert line["origin"] == "memory, kept because refreshing failed"
    assert_no_token(caplog, token, emu)


def test_a_token_that_arrives_expired_is_named_as_fetched_now(
    emu: EcrEmulator, cache: TokenCache, source: EcrTokenSource, caplog: pytest.LogCaptureFixture
) -> None:
    emu.set_faults(clock_skew=86400)
    caplog.set_level(logging.INFO, logger="airflow_ecr")
    token = cache.get_one(source, REGISTRY)
    (line,) = provenance(caplog)
    assert line["origin"] == "ECR (fetched now)" and line["until"] == utc_time(token.expires_at)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "already past by this host's clock" in warnings[0], warnings


# -- each mode's path ------------------------------------------------------------------------------


def test_operator_decorator_and_docker_py_logins_log_provenance(
    emu: EcrEmulator, cache: TokenCache, caplog: pytest.LogCaptureFixture
) -> None:
    # EcrDockerOperator and @task.ecr_docker get their logins from the hook's authenticator.
    caplog.set_level(logging.INFO, logger="airflow_ecr")
    auth = EcrDockerHook(image=f"{HOST}/app:1", aws_conn_id="aws_test", token_cache=cache).registry_auth()
    assert [line["origin"] for line in provenance(caplog)] == ["ECR (fetched now)"]
    EcrDockerHook(image=f"{HOST}/app:1", aws_conn_id="aws_test", token_cache=cache).registry_auth()
    assert [line["origin"] for line in provenance(caplog)] == ["ECR (fetched now)", "memory"]
    assert_no_token(caplog, EcrToken("AWS", auth["password"], HOST, 0.0, 0.0), emu)


def test_a_swarm_service_login_logs_provenance(
    emu: EcrEmulator, cache: TokenCache, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[dict[str, Any]] = []

    def create_service(client: Any, task_template: Any, *args: Any, **kwargs: Any) -> dict[str, str]:
        sent.append(client._auth_configs.resolve_authconfig(HOST))
        return {"ID": "svc"}

    # Only the daemon's side is replaced: EcrAPIClient.create_service runs as in a swarm task.
    monkeypatch.setattr(docker.APIClient, "create_service", create_service)
    hook = EcrDockerHook(image=f"{HOST}/app:1", aws_conn_id="aws_test", token_cache=cache)
    client = EcrAPIClient(ecr=hook.authenticator, base_url="unix:///nonexistent.sock", version="1.44")
    caplog.set_level(logging.INFO, logger="airflow_ecr")
    assert client.create_service({"ContainerSpec": {"Image": f"{HOST}/app:1"}}) == {"ID": "svc"}
    assert [line["origin"] for line in provenance(caplog)] == ["ECR (fetched now)"]
    assert sent[0]["password"] == emu.password(ACCOUNT)[0]
    assert_no_token(caplog, EcrToken("AWS", sent[0]["password"], HOST, 0.0, 0.0), emu)


def test_the_secrets_backend_logs_provenance_naming_the_connection(
    emu: EcrEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    backend = EcrDockerConnectionBackend(
        endpoint_url=emu.url, region_name=REGION, aws_access_key_id="AKIAPROVENANCE", aws_secret_access_key="testing"
    )
    caplog.set_level(logging.INFO, logger="airflow_ecr")
    with running_task():
        first = backend.get_connection(f"ecr:{HOST}")
        backend.get_connection(f"ecr:{HOST}")
    assert first is not None and first.password
    lines = provenance(caplog)
    assert [(line["origin"], line["requester"]) for line in lines] == [
        ("ECR (fetched now)", f"connection 'ecr:{HOST}'"),
        ("memory", f"connection 'ecr:{HOST}'"),
    ]
    assert_no_token(caplog, EcrToken("AWS", first.password, HOST, 0.0, 0.0), emu)


def test_stored_connections_log_provenance(
    emu: EcrEmulator, cache: TokenCache, source: EcrTokenSource, caplog: pytest.LogCaptureFixture
) -> None:
    # EcrCredentialRegisterOperator, ecr_refresh_dag and `airflow-ecr refresh-connection` all write through this.
    written: dict[str, str] = {}

    class Writer:
        description = "a dict"

        def upsert(self, conn_id: str, *, password: str, **kwargs: Any) -> None:
            written[conn_id] = password

    caplog.set_level(logging.INFO, logger="airflow_ecr")
    refresh_docker_connections([("docker_ecr", REGISTRY)], source=source, writer=Writer(), cache=cache)
    assert [line["origin"] for line in provenance(caplog)] == ["ECR (fetched now)"]
    assert_no_token(caplog, EcrToken("AWS", written["docker_ecr"], HOST, 0.0, 0.0), emu)
