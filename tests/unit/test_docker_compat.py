"""
A Docker config's ``credsStore`` / ``credHelpers`` never replace the login we give docker-py.

docker-py asks ``credHelpers[host]``, then ``credsStore``, before the logins kept in memory, for
every request whose ``X-Registry-Auth`` it builds itself (``create_service``, ``pull`` without
``auth_config``, ``build``). These tests put a fake credential helper on ``PATH`` (it hands out
``helper-secret`` for any registry and records what it was asked) and a Docker config naming it in
a temporary ``DOCKER_CONFIG``, then drive the real docker-py client over HTTP against a tiny fake
Engine API on 127.0.0.1 that records the auth of each request.

The stock ``DockerHook`` path (modes 2 and 3 with the provider's own ``DockerOperator``) is not
ours: its test pins the behaviour ``docs/security.md`` documents, and the workaround.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.docker.hooks.docker import DockerHook

from airflow_ecr.hooks import _docker_compat
from airflow_ecr.hooks.docker import EcrAPIClient, EcrAuthenticator, EcrDockerHook
from airflow_ecr.registry import EcrRegistry, parse_registry_host
from airflow_ecr.settings import EcrSettings
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.token import EcrToken
from helpers.fake_http import EngineAPI, serving
from helpers.isolation import isolate_from_host

H = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
IMAGE = f"{H}/app:1"
OTHER = "registry.example.test:5000"  # a non-ECR registry a ``docker`` connection logs in to
HELPER_SECRET = "helper-secret"
HELPER = """#!/bin/sh
# A docker credential helper (get/list protocol) with an entry for every registry.
case "$1" in
  get) read -r url; echo "get $url" >> "$FAKEHELPER_LOG"
       printf '{"ServerURL":"%s","Username":"AWS","Secret":"helper-secret"}' "$url" ;;
  list) echo "list" >> "$FAKEHELPER_LOG"; printf '{"https://%s":"AWS"}' "$FAKEHELPER_HOST" ;;
  *) exit 1 ;;
esac
"""

CONFIGS = {
    "credsStore": {"credsStore": "fakehelper"},
    "credHelpers": {"credHelpers": {H: "fakehelper", OTHER: "fakehelper"}},
    "both": {"credsStore": "fakehelper", "credHelpers": {H: "fakehelper", OTHER: "fakehelper"}},
}


# -- fakes: a credential helper, a Docker config, an Engine API -----------------------------------


class FakeSource:
    """Hands out the token ``ours-<n>`` (one per fetch)."""

    identity = "id-fake"
    description = "fake source"

    def __init__(self) -> None:
        self.calls = 0

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        self.calls += 1
        now = time.time()
        return {
            r.registry_id: EcrToken("AWS", f"ours-{self.calls}", f"https://{r.host}", now + 3600, now)
            for r in registries
        }


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    isolate_from_host(monkeypatch, tmp_path, "AIRFLOW_CONN_", "DOCKER_")


@pytest.fixture
def helper_log(monkeypatch, tmp_path) -> Path:
    """``docker-credential-fakehelper`` on PATH (for this test only); the file it logs its calls to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-fakehelper"
    script.write_text(HELPER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "helper.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKEHELPER_LOG", str(log))
    monkeypatch.setenv("FAKEHELPER_HOST", H)
    return log


def docker_config(monkeypatch, tmp_path: Path, config: dict[str, Any]) -> None:
    """A temporary DOCKER_CONFIG with ``config`` as its config.json (never the real ~/.docker)."""
    directory = tmp_path / "docker-config"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))


@pytest.fixture
def engine() -> Iterator[EngineAPI]:
    with serving(EngineAPI(), poll_interval=0.01) as server:
        yield server


def ecr_client(engine: EngineAPI, source: FakeSource) -> EcrAPIClient:
    cache = TokenCache(EcrSettings(cache_enabled=False))
    return EcrAPIClient(
        ecr=EcrAuthenticator([parse_registry_host(H)], source, cache), base_url=engine.url, version="1.44"
    )


def docker_connection(monkeypatch, conn_id: str, host: str, password: str) -> None:
    conn = {"conn_type": "docker", "host": host, "login": "AWS", "password": password}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def password(auth: dict[str, Any] | None) -> str | None:
    """The password of a registry auth, whichever key case docker-py used (helpers: ``Password``)."""
    return None if auth is None else auth.get("password", auth.get("Password"))


# -- our paths: the Docker config never wins for our registries ------------------------------------


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_swarm_service_carries_our_token_whatever_the_docker_config(monkeypatch, tmp_path, helper_log, engine, config):
    docker_config(monkeypatch, tmp_path, config)
    client = ecr_client(engine, FakeSource())
    client.create_service({"ContainerSpec": {"Image": IMAGE}}, name="s")
    client.create_service({"ContainerSpec": {"Image": IMAGE}}, name="s2")  # the second one too
    assert [password(a) for a in engine.auths("/services/create")] == ["ours-1", "ours-1"]
    assert engine.auths("/services/create")[0]["serveraddress"] == H
    assert HELPER_SECRET not in json.dumps(engine.requests)
    assert f"get https://{H}" not in helper_log.read_text()  # the store is not even asked for our host


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_pull_carries_our_token_whatever_the_docker_config(monkeypatch, tmp_path, helper_log, engine, config, stream):
    docker_config(monkeypatch, tmp_path, config)
    result = ecr_client(engine, FakeSource()).pull(IMAGE, stream=stream, decode=stream)
    list(result) if stream else result
    assert [password(a) for a in engine.auths("/images/create")] == ["ours-1"]
    assert helper_log.read_text() == ""


def test_other_registries_still_resolve_through_the_docker_config(monkeypatch, tmp_path, helper_log, engine):
    docker_config(monkeypatch, tmp_path, CONFIGS["credsStore"])
    client = ecr_client(engine, FakeSource())
    client.create_service({"ContainerSpec": {"Image": IMAGE}})
    client.create_service({"ContainerSpec": {"Image": "ghcr.io/org/app:1"}})
    assert [password(a) for a in engine.auths("/services/create")] == ["ours-1", HELPER_SECRET]


def test_build_credentials_give_ours_for_our_registries(monkeypatch, tmp_path, helper_log, engine):
    docker_config(monkeypatch, tmp_path, CONFIGS["both"])
    client = ecr_client(engine, FakeSource())
    _docker_compat.set_service_auth(client, H, {"username": "AWS", "password": "ours", "serveraddress": H})
    # what build() sends as X-Registry-Config
    assert password(client._auth_configs.get_all_credentials()[H]) == "ours"


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_hook_login_of_a_docker_connection_wins_over_the_docker_config(
    monkeypatch, tmp_path, helper_log, engine, config
):
    """``EcrDockerHook(docker_conn_id=<docker connection to another registry>)``: its pulls use that login."""
    docker_config(monkeypatch, tmp_path, config)
    docker_connection(monkeypatch, "docker_other", OTHER, "conn-secret")
    hook = EcrDockerHook(image=IMAGE, docker_conn_id="docker_other", base_url=engine.url, version="1.44")
    hook.__dict__["token_source"] = FakeSource()
    client = hook.get_conn()
    client.pull(f"{OTHER}/tool:1")
    client.pull(IMAGE)
    assert [a["password"] for a in engine.auths("/auth")] == ["conn-secret"]
    assert [password(a) for a in engine.auths("/images/create")] == ["conn-secret", "ours-1"]


def test_hook_with_a_stored_ecr_connection_pulls_with_a_fresh_token(monkeypatch, tmp_path, helper_log, engine):
    """Mode 3's stored connection given to ``EcrDockerOperator``: the pull gets a token of ours."""
    docker_config(monkeypatch, tmp_path, CONFIGS["both"])
    docker_connection(monkeypatch, "docker_ecr", H, "stored-token")
    hook = EcrDockerHook(image=IMAGE, docker_conn_id="docker_ecr", base_url=engine.url, version="1.44")
    hook.__dict__["token_source"] = FakeSource()
    list(hook.get_conn().pull(IMAGE, stream=True, decode=True))
    assert [password(a) for a in engine.auths("/images/create")] == ["ours-1"]


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_daemon_login_sends_exactly_our_credentials(monkeypatch, tmp_path, helper_log, engine, config):
    """doctor's login check: no store consulted, nothing kept in the client."""
    docker_config(monkeypatch, tmp_path, config)
    client = ecr_client(engine, FakeSource())
    ours = {"username": "AWS", "password": "ours", "serveraddress": f"https://{H}"}
    assert _docker_compat.daemon_login(client, ours) == {"Status": "Login Succeeded"}
    assert engine.auths("/auth") == [ours]
    assert helper_log.read_text() == "" and not client._auth_configs.auths


# -- the stock DockerHook (modes 2 and 3 with the provider's DockerOperator): documented, not ours --


def test_stock_docker_hook_pull_asks_the_creds_store_first(monkeypatch, tmp_path, helper_log, engine):
    """
    The provider's ``DockerHook`` logs in with the connection (secrets backend or stored), but
    docker-py's pull then sends the store's credentials: docs/security.md says so, and this test
    notices if docker-py or the provider change.
    """
    docker_config(monkeypatch, tmp_path, CONFIGS["credsStore"])
    docker_connection(monkeypatch, "docker_ecr", H, "conn-token")
    DockerHook(docker_conn_id="docker_ecr", base_url=engine.url, version="1.44").api_client.pull(IMAGE)
    assert [a["password"] for a in engine.auths("/auth")] == ["conn-token"]
    assert [password(a) for a in engine.auths("/images/create")] == [HELPER_SECRET]


def test_stock_docker_hook_workaround_docker_config_without_a_store(monkeypatch, tmp_path, helper_log, engine):
    """The documented workaround: the worker's DOCKER_CONFIG points to a config naming no store."""
    docker_config(monkeypatch, tmp_path, {"auths": {}})
    docker_connection(monkeypatch, "docker_ecr", H, "conn-token")
    DockerHook(docker_conn_id="docker_ecr", base_url=engine.url, version="1.44").api_client.pull(IMAGE)
    assert [password(a) for a in engine.auths("/images/create")] == ["conn-token"]
    assert helper_log.read_text() == ""
