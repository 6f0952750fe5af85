"""
``docker-credential-airflow-ecr`` (the protocol, the warm index, the cold path through the token
cache) and ``airflow-ecr configure-docker``'s merge of Docker's config.json.

The cold path runs in this process with a real :class:`EcrTokenSource` whose ECR call is replaced;
the warm path runs as Docker runs it, a new process, which must not import Airflow.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from airflow_ecr.credential_helper import cold, docker_config, index, protocol
from airflow_ecr.exceptions import DockerConfigError
from airflow_ecr.registry import EcrRegistry
from airflow_ecr.tokens.private_files import loads_flat
from airflow_ecr.tokens.sources import EcrTokenSource
from airflow_ecr.tokens.token import EcrToken
from helpers.isolation import isolate_from_host

HOST = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
ALIAS = "registry.example.com"


class MintingSource(EcrTokenSource):
    """A connection source whose connection is given and whose ECR call mints a numbered token."""

    calls: ClassVar[list[list[str]]] = []

    def connection(self) -> Any:
        return SimpleNamespace(conn_type="aws", host=None, login=None, schema=None, extra_dejson={"role_arn": "r"})

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        MintingSource.calls.append([r.host for r in registries])
        now = time.time()
        password = f"SECRET-{len(MintingSource.calls)}"
        return {r.registry_id: EcrToken("AWS", password, f"https://{r.host}", now + 12 * 3600, now) for r in registries}


@pytest.fixture
def helper_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private cache, no AWS identity of the host, the cold path's source replaced; the cache dir."""
    isolate_from_host(monkeypatch, tmp_path)
    # Set before the first get: the cold path sets it otherwise, and the next process's locator differs.
    monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    monkeypatch.setenv("AIRFLOW__ECR__REGISTRY_ALIASES", f"{ALIAS}=111111111111:eu-west-1")
    monkeypatch.setattr(cold.EcrTokenSource, "from_connection", classmethod(lambda cls, conn_id: MintingSource()))
    MintingSource.calls = []
    return tmp_path / "cache"


def run(action: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = protocol.main([action], io.StringIO(stdin), out)
    return code, out.getvalue()


def helper_process(action: str, stdin: str, check_no_airflow: bool = True) -> subprocess.CompletedProcess[str]:
    """The helper as Docker runs it, in a new process; it fails if it imported Airflow."""
    code = (
        "import io, sys\n"
        "from airflow_ecr.credential_helper import protocol\n"
        f"rc = protocol.main([{action!r}])\n"
        + ("assert 'airflow' not in sys.modules, 'imported Airflow'\n" if check_no_airflow else "")
        + "sys.exit(rc)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], input=stdin, capture_output=True, text=True, env=dict(os.environ), check=False
    )


# -- the protocol ------------------------------------------------------------------------------
def test_get_answers_the_protocol_json_and_the_next_process_is_warm(helper_env: Path) -> None:
    code, out = run("get", f"https://{HOST}/v2/\n")
    assert code == 0
    answer = json.loads(out)
    assert answer == {"ServerURL": f"https://{HOST}/v2/", "Username": "AWS", "Secret": "SECRET-1"}
    warm = helper_process("get", HOST)
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert json.loads(warm.stdout) == {"ServerURL": HOST, "Username": "AWS", "Secret": "SECRET-1"}
    assert MintingSource.calls == [[HOST]]
    listed = helper_process("list", "")
    assert json.loads(listed.stdout) == {HOST: "AWS"}


def test_declared_alias_is_served_with_its_registry_token(helper_env: Path) -> None:
    code, out = run("get", ALIAS)
    assert code == 0 and json.loads(out)["Secret"] == "SECRET-1"
    code, out = run("get", HOST)
    assert code == 0 and json.loads(out)["Secret"] == "SECRET-1"  # one registry, one token
    assert MintingSource.calls == [[ALIAS]]


@pytest.mark.parametrize("server", ["docker.io", "https://index.docker.io/v1/", "ghcr.io", "public.ecr.aws.evil.com"])
def test_a_host_it_does_not_serve_is_the_protocols_not_found(helper_env: Path, server: str) -> None:
    assert run("get", server) == (1, protocol.NOT_FOUND + "\n")
    assert MintingSource.calls == []


def test_protocol_errors(helper_env: Path) -> None:
    assert run("get", "  \n") == (1, protocol.MISSING_SERVER_URL + "\n")
    assert run("frobnicate") == (1, "Unknown credential action `frobnicate`\n")
    assert protocol.main([], io.StringIO(), out := io.StringIO()) == 1 and out.getvalue().startswith("Usage:")
    for action in ("store", "erase"):
        code, out = run(action, json.dumps({"ServerURL": HOST, "Username": "AWS", "Secret": "x"}))
        assert code == 2
        assert out.count("\n") == 1 and f"does not {action} credentials" in out


def test_a_failing_cold_get_is_one_line_without_secret(helper_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_ecr.exceptions import EcrCredentialsError

    def denied(self: MintingSource, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        raise EcrCredentialsError("AWS refused aws_conn_id='aws_default': grant ecr:GetAuthorizationToken.")

    monkeypatch.setattr(MintingSource, "fetch", denied)
    code, out = run("get", HOST)
    assert code == 3
    assert out.count("\n") == 1 and "ecr:GetAuthorizationToken" in out and out.startswith(protocol.PROG)


# -- the warm index ----------------------------------------------------------------------------
def test_a_warm_get_does_not_import_airflow_and_misses_when_the_identity_may_differ(
    helper_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("get", HOST)[0] == 0
    assert helper_process("get", HOST).returncode == 0
    # Another connection under the same id, another team, another deployment: a miss (cold, so
    # Airflow is imported), never the recorded token.
    for name, value in (
        ("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}'),
        ("AIRFLOW_CTX_TEAM_NAME", "team-b"),
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite:////tmp/other.db"),
        ("AWS_PROFILE", "other"),
    ):
        with monkeypatch.context() as changed:
            changed.setenv(name, value)
            locator = index.locator(os.environ)
            assert index.warm_get(HOST, locator, os.environ, time.time()) is None, name
    assert index.warm_get(HOST, index.locator(os.environ), os.environ, time.time()) == ("AWS", "SECRET-1")
    # The task context every task process exports (and a DockerOperator's helper inherits) names the
    # task, not the identity: the next task still finds the record.
    with monkeypatch.context() as task:
        task.setenv("AIRFLOW_CTX_DAG_ID", "another_dag")
        task.setenv("AIRFLOW_CTX_TASK_ID", "another_task")
        assert index.warm_get(HOST, index.locator(os.environ), os.environ, time.time()) == ("AWS", "SECRET-1")


def test_the_record_lapses_with_identity_recheck_and_the_refresh_policy(helper_env: Path) -> None:
    assert run("get", HOST)[0] == 0
    locator = index.locator(os.environ)
    record_path = helper_env / f"{index.record_name(locator, HOST)}{index.INDEX_SUFFIX}"
    record = json.loads(record_path.read_text())
    now = time.time()
    assert record["valid_until"] == pytest.approx(now + 15 * 60, abs=30)  # [ecr] identity_recheck's default
    assert now + 5 * 3600 < record["serve_until"] <= now + 6 * 3600  # refresh_ratio 0.5, jitter 0.1
    assert "SECRET" not in record_path.read_text()
    assert index.warm_get(HOST, locator, os.environ, record["valid_until"] + 1) is None
    assert index.warm_get(HOST, locator, os.environ, record["serve_until"] + 1) is None


def test_a_refreshed_or_dropped_token_is_not_served_from_the_record(helper_env: Path) -> None:
    assert run("get", HOST)[0] == 0
    locator = index.locator(os.environ)
    record = json.loads((helper_env / f"{index.record_name(locator, HOST)}{index.INDEX_SUFFIX}").read_text())
    entry = helper_env / f"{record['key']}.json"
    data = json.loads(entry.read_text())
    data["issued_at"] += 1  # another process refreshed the entry: the record is for the old token
    entry.write_text(json.dumps(data))
    assert index.warm_get(HOST, locator, os.environ, time.time()) is None
    entry.unlink()  # dropped (AWS denied the identity)
    assert index.warm_get(HOST, locator, os.environ, time.time()) is None


def test_an_open_cache_directory_is_not_read(helper_env: Path) -> None:
    assert run("get", HOST)[0] == 0
    helper_env.chmod(0o755)
    assert index.warm_get(HOST, index.locator(os.environ), os.environ, time.time()) is None


def test_identity_recheck_zero_writes_no_record(helper_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__IDENTITY_RECHECK", "0")
    assert run("get", HOST)[0] == 0
    assert not list(helper_env.glob(f"*{index.INDEX_SUFFIX}"))


@pytest.mark.parametrize(
    "value",
    [
        {"version": 1, "username": "AWS", "password": "eyJ+/=", "expires_at": 1.7e9, "issued_at": 1765101234.123456},
        {"a": "x, y", "b": "c"},
        {"a": [1]},
        {"a": None, "b": True},
        {"a": 'q"', "b": "\\"},
        {"n": -3, "e": 1e-7},
        {},
    ],
)
def test_loads_flat_reads_as_json_does(value: dict[str, Any]) -> None:
    text = json.dumps(value)
    assert loads_flat(text.encode()) == json.loads(text)


def test_server_host() -> None:
    assert index.server_host(f"HTTPS://{HOST.upper()}/v2/") == HOST
    assert index.server_host(f" {HOST}\n") == HOST
    assert index.server_host("") == ""


# -- configure-docker --------------------------------------------------------------------------
def test_configure_merges_keeps_every_other_key_and_writes_0600(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    original = {"auths": {"other.example.com": {"auth": "b64"}}, "credsStore": "desktop", "credHelpers": {"x": "y"}}
    path.write_text(json.dumps(original))
    path.chmod(0o644)
    changes = docker_config.configure([HOST, ALIAS], path)
    assert [c.describe() for c in changes] == [
        f"{HOST}: credHelpers entry added (docker-credential-airflow-ecr)",
        f"{ALIAS}: credHelpers entry added (docker-credential-airflow-ecr)",
    ]
    written = json.loads(path.read_text())
    assert written == {**original, "credHelpers": {"x": "y", HOST: "airflow-ecr", ALIAS: "airflow-ecr"}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name != "config.json"]  # no temp file left
    again = docker_config.configure([HOST], path)
    assert again[0].configured and again[0].describe().endswith("already uses docker-credential-airflow-ecr")


def test_configure_changes_another_helper_and_check_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credHelpers": {HOST: "ecr-login"}}))
    before = path.read_bytes()
    checked = docker_config.configure([HOST], path, check=True)
    assert not checked[0].configured and path.read_bytes() == before
    changed = docker_config.configure([HOST], path)
    assert changed[0].describe() == f"{HOST}: credHelpers entry changed from 'ecr-login' to 'airflow-ecr'"


@pytest.mark.parametrize("text", ["{bad", "[]", '{"credHelpers": []}', "\xff"])
def test_configure_refuses_a_file_it_cannot_parse_and_leaves_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DockerConfigError) as caught:
        docker_config.configure([HOST], path)
    assert "nothing was changed" in str(caught.value) and caught.value.exit_code == 2
    assert path.read_bytes() == text.encode("latin-1")


def test_unknown_registry_is_one_actionable_sentence(helper_env: Path) -> None:
    with pytest.raises(DockerConfigError, match="neither an Amazon ECR registry nor an alias declared"):
        docker_config.registry_hosts(["docker.io"])
    assert docker_config.registry_hosts([f"https://{HOST}/", ALIAS]) == [HOST, ALIAS]
    assert docker_config.registry_hosts([]) == [ALIAS, HOST]


def test_configure_docker_command(
    helper_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_ecr import cli

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    assert cli.main(["configure-docker", "--check", HOST]) == 2
    assert not (tmp_path / "docker").exists()
    assert cli.main(["configure-docker", HOST]) == 0
    assert cli.main(["configure-docker", "--check", HOST]) == 0
    assert cli.main(["configure-docker", "docker.io"]) == 2
    out, err = capsys.readouterr()
    assert f"{HOST}: credHelpers entry added" in out and f"{HOST}: configured in" in out
    assert "docker.io" in err and err.count("\n") == 1


def test_one_process_at_a_time_takes_the_cold_path(helper_env: Path) -> None:
    locator = index.locator(os.environ)
    first = index.take_turn(HOST, locator, os.environ, timeout=1)
    assert first is not None
    waiter = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; from airflow_ecr.credential_helper import index; "
            f"sys.exit(index.take_turn({HOST!r}, {locator!r}, os.environ, timeout=0.3) is None)",
        ],
        env=dict(os.environ),
        check=False,
    )
    assert waiter.returncode == 1  # timed out while the first holds the turn
    index.end_turn(first)
    second = index.take_turn(HOST, locator, os.environ, timeout=1)
    assert second is not None
    index.end_turn(second)
    assert stat.S_IMODE(helper_env.stat().st_mode) == 0o700


CODE_GET = "import sys; from airflow_ecr.credential_helper import protocol; sys.exit(protocol.main(['get']))"


def test_a_helper_with_no_airflow_configuration_at_all_says_what_to_do(tmp_path: Path) -> None:
    """No AIRFLOW_*, no AWS_*, an empty home: one line on stdout naming the connection, exit 3."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true"}
    done = subprocess.run(
        [sys.executable, "-c", CODE_GET],
        input=HOST,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stdout + done.stderr[-2000:]
    assert done.stdout.count("\n") == 1 and "aws_conn_id='aws_default'" in done.stdout
    assert done.stdout.startswith(protocol.PROG)
