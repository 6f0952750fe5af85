"""
Stored-connection mode without Airflow processes: the naming rule and argument checks of
EcrCredentialRegisterOperator, tokens from the in-process ECR emulator (boto3 over real HTTP), the
REST API writer against a small fake of Airflow 3's connection API, the CLI's exit codes and the
DAG factory. The real api-server, the ORM on PostgreSQL and real DAG runs are in
tests/e2e/test_credentials_lab.py.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr import _compat, cli
from airflow_ecr.connections import (
    OrmConnectionWriter,
    RestApiConnectionWriter,
    connection_ids,
    default_writer,
    normalize_registry_ids,
    refresh_docker_connections,
)
from airflow_ecr.exceptions import ConnectionWriteError, EcrConfigurationError, EcrCredentialsError
from airflow_ecr.operators.credentials import EcrCredentialRegisterOperator
from airflow_ecr.provider_info import get_provider_info
from airflow_ecr.registry import resolve_host
from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource
from helpers.isolation import aws_test_connection, isolate_from_host, keep_airflow_logging

ACCT1, ACCT2 = "111111111111", "222222222222"
REGION = "eu-west-1"
HOST1 = f"{ACCT1}.dkr.ecr.{REGION}.amazonaws.com"
HOST2 = f"{ACCT2}.dkr.ecr.{REGION}.amazonaws.com"
API_PASSWORD = "api-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCT1, REGION), EmulatedAccount(ACCT2, REGION)]) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _isolated(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A private token cache, no AWS identity from the environment, an ``aws_test`` connection."""
    isolate_from_host(monkeypatch, tmp_path, "AIRFLOW_CONN_")
    aws_test_connection(monkeypatch, emu.url, "AKIAUNITTEST", REGION)
    keep_airflow_logging(monkeypatch)
    emu.reset()
    TokenCache.clear_memory()
    yield
    TokenCache.clear_memory()


class RecordingWriter:
    """A ConnectionWriter keeping connections in a dict."""

    description = "a dict"

    def __init__(self) -> None:
        self.connections: dict[str, dict[str, str]] = {}

    def upsert(self, conn_id: str, *, host: str, login: str, password: str) -> None:
        self.connections[conn_id] = {"host": host, "login": login, "password": password}


# -- the naming rule and argument checks -------------------------------------------------------
def test_one_registry_id_writes_conn_id_name_itself() -> None:
    assert connection_ids("docker_ecr", [ACCT1], REGION) == ["docker_ecr"]


def test_several_registry_ids_get_a_suffix_or_follow_the_template() -> None:
    assert connection_ids("docker_ecr", [ACCT1, ACCT2], REGION) == [f"docker_ecr_{ACCT1}", f"docker_ecr_{ACCT2}"]
    assert connection_ids("ecr_{region}_{registry_id}", [ACCT1, ACCT2], REGION) == [
        f"ecr_{REGION}_{ACCT1}",
        f"ecr_{REGION}_{ACCT2}",
    ]


@pytest.mark.parametrize(
    ("name", "ids", "message"),
    [
        ("", [ACCT1], "non-empty connection id"),
        ("ecr_{region}", [ACCT1, ACCT2], "same connection id"),
        ("ecr_{account}", [ACCT1], "placeholders"),
    ],
)
def test_bad_connection_names_are_refused(name: str, ids: list[str], message: str) -> None:
    with pytest.raises(EcrConfigurationError, match=message):
        connection_ids(name, ids, REGION)


def test_registry_ids_is_an_alias_of_register_ids() -> None:
    assert normalize_registry_ids(None, [ACCT1]) == [ACCT1]
    assert normalize_registry_ids([ACCT1, ACCT1], None) == [ACCT1]
    assert normalize_registry_ids(f"{ACCT1}, {ACCT2}", None) == [ACCT1, ACCT2]
    with pytest.raises(EcrConfigurationError, match="not both"):
        normalize_registry_ids([ACCT1], [ACCT2])


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (None, "non-empty list"),
        ([], "non-empty list"),
        ([""], "malformed registry ids"),
        (["12345"], "malformed registry ids"),
        ([111111111111], "malformed registry ids"),
        (["11111111111a"], "malformed registry ids"),
        ({"id": ACCT1}, "non-empty list"),
    ],
)
def test_empty_or_malformed_registry_ids_are_refused(ids: Any, message: str) -> None:
    operator = EcrCredentialRegisterOperator(
        task_id="t", conn_id_name="docker_ecr", region_name=REGION, register_ids=ids
    )
    with pytest.raises(EcrConfigurationError, match=message):
        operator.targets()


@pytest.mark.parametrize("region", ["moon", "EU-WEST-1", "eu_west_1", ""])
def test_malformed_region_is_refused(region: str) -> None:
    operator = EcrCredentialRegisterOperator(
        task_id="t", conn_id_name="docker_ecr", region_name=region or None, register_ids=[ACCT1], aws_conn_id=None
    )
    with pytest.raises(EcrConfigurationError, match="region"):
        operator.targets()


def test_region_defaults_to_the_aws_connections() -> None:
    operator = EcrCredentialRegisterOperator(
        task_id="t", conn_id_name="docker_ecr", register_ids=[ACCT1, ACCT2], aws_conn_id="aws_test"
    )
    assert [(c, r.host) for c, r in operator.targets()] == [
        (f"docker_ecr_{ACCT1}", HOST1),
        (f"docker_ecr_{ACCT2}", HOST2),
    ]


# -- tokens into connections ---------------------------------------------------------------------
def test_execute_writes_docker_logins_and_returns_nothing_secret(
    emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = RecordingWriter()
    monkeypatch.setattr("airflow_ecr.operators.credentials.default_writer", lambda api_conn_id: writer)
    operator = EcrCredentialRegisterOperator(
        task_id="t", conn_id_name="docker_ecr", region_name=REGION, register_ids=[ACCT1, ACCT2], aws_conn_id="aws_test"
    )
    result = operator.execute({})  # type: ignore[arg-type]
    passwords = {emu.password(ACCT1)[0], emu.password(ACCT2)[0]}
    assert writer.connections == {
        f"docker_ecr_{ACCT1}": {"host": HOST1, "login": "AWS", "password": emu.password(ACCT1)[0]},
        f"docker_ecr_{ACCT2}": {"host": HOST2, "login": "AWS", "password": emu.password(ACCT2)[0]},
    }
    assert [r["conn_id"] for r in result] == [f"docker_ecr_{ACCT1}", f"docker_ecr_{ACCT2}"]
    assert not any(p in json.dumps(result) for p in passwords)
    # Both registries of the region in one GetAuthorizationToken call.
    assert len(emu.calls()) == 1


def test_access_denied_writes_nothing(emu: EcrEmulator) -> None:
    emu.set_faults(deny=True)
    writer = RecordingWriter()
    with pytest.raises(EcrCredentialsError, match=r"aws_test.*ecr:GetAuthorizationToken"):
        refresh_docker_connections(
            [("docker_ecr", resolve_host(HOST1))], source=EcrTokenSource.from_connection("aws_test"), writer=writer
        )
    assert writer.connections == {}


def test_region_without_that_registry_writes_nothing() -> None:
    writer = RecordingWriter()
    with pytest.raises(EcrCredentialsError, match="not emulated in region ap-northeast-1"):
        refresh_docker_connections(
            [("docker_ecr", resolve_host(f"{ACCT1}.dkr.ecr.ap-northeast-1.amazonaws.com"))],
            source=EcrTokenSource.from_connection("aws_test"),
            writer=writer,
        )
    assert writer.connections == {}


# -- the REST API writer against a fake of Airflow 3's API -------------------------------------
class FakeAirflowApi(ThreadingHTTPServer):
    """``/auth/token`` and ``/api/v2/connections`` as Airflow 3 answers them, on loopback."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ApiHandler)
        self.connections: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.jwt = "jwt-" + secrets.token_hex(8)
        self.echo_body_with_422 = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ApiHandler(BaseHTTPRequestHandler):
    server: FakeAirflowApi

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        path = self.path.split("?")[0]
        self.server.requests.append((self.command, path))
        if path == "/auth/token":
            if body == {"username": "admin", "password": API_PASSWORD}:
                return self._reply(201, {"access_token": self.server.jwt})
            return self._reply(401, {"detail": "Invalid credentials"})
        if self.headers.get("Authorization") != f"Bearer {self.server.jwt}":
            return self._reply(401, {"detail": "Not authenticated"})
        if self.server.echo_body_with_422:
            return self._reply(422, {"detail": f"bad input {body}"})
        conns = self.server.connections
        if self.command == "POST" and path == "/api/v2/connections":
            if body["connection_id"] in conns:
                return self._reply(409, {"detail": "exists"})
            conns[body["connection_id"]] = body
            return self._reply(201, body)
        if self.command == "PATCH" and path.startswith("/api/v2/connections/"):
            conn_id = path.rsplit("/", 1)[1]
            if conn_id not in conns:
                return self._reply(404, {"detail": f"The Connection with connection_id: `{conn_id}` was not found"})
            conns[conn_id].update(body)
            return self._reply(200, conns[conn_id])
        return self._reply(404, {"detail": "Not Found"})

    do_POST = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAirflowApi]:
    server = FakeAirflowApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    set_api_connection(monkeypatch, server.url, API_PASSWORD)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def set_api_connection(monkeypatch: pytest.MonkeyPatch, url: str, password: str) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRFLOW_API",
        json.dumps({"conn_type": "http", "host": url, "login": "admin", "password": password}),
    )


def test_api_writer_creates_then_patches_with_one_login(api: FakeAirflowApi) -> None:
    writer = RestApiConnectionWriter("airflow_api")
    writer.upsert("docker_ecr", host=HOST1, login="AWS", password="pw-1")
    writer.upsert("docker_ecr", host=HOST1, login="AWS", password="pw-2")
    assert api.connections["docker_ecr"]["password"] == "pw-2"
    assert api.connections["docker_ecr"]["conn_type"] == "docker"
    assert api.requests == [
        ("POST", "/auth/token"),
        ("PATCH", "/api/v2/connections/docker_ecr"),
        ("POST", "/api/v2/connections"),
        ("PATCH", "/api/v2/connections/docker_ecr"),
    ]
    assert ("DELETE", "/api/v2/connections/docker_ecr") not in api.requests


def test_api_writer_logs_in_again_when_the_jwt_expires(api: FakeAirflowApi) -> None:
    writer = RestApiConnectionWriter("airflow_api")
    writer.upsert("docker_ecr", host=HOST1, login="AWS", password="pw-1")
    api.jwt = "jwt-rotated"
    writer.upsert("docker_ecr", host=HOST1, login="AWS", password="pw-2")
    assert api.connections["docker_ecr"]["password"] == "pw-2"
    assert api.requests.count(("POST", "/auth/token")) == 2


def test_api_refusing_credentials_names_url_and_connection(
    api: FakeAirflowApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_api_connection(monkeypatch, api.url, "wrong")
    with pytest.raises(ConnectionWriteError) as info:
        RestApiConnectionWriter("airflow_api").upsert("docker_ecr", host=HOST1, login="AWS", password="pw-1")
    assert api.url in str(info.value)
    assert "'airflow_api'" in str(info.value)
    assert "HTTP 401" in str(info.value)


def test_api_down_names_url_and_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeAirflowApi()
    url = server.url
    server.server_close()  # a port nobody listens on
    set_api_connection(monkeypatch, url, API_PASSWORD)
    with pytest.raises(ConnectionWriteError, match=rf"Cannot reach the Airflow REST API at {url}.*'airflow_api'"):
        RestApiConnectionWriter("airflow_api").upsert("docker_ecr", host=HOST1, login="AWS", password="pw-1")


def test_api_errors_never_echo_the_password(api: FakeAirflowApi) -> None:
    api.echo_body_with_422 = True
    with pytest.raises(ConnectionWriteError) as info:
        RestApiConnectionWriter("airflow_api").upsert("docker_ecr", host=HOST1, login="AWS", password="pw-SECRET-1")
    assert "HTTP 422" in str(info.value)
    assert "pw-SECRET-1" not in str(info.value)


def test_missing_api_connection_says_what_to_create() -> None:
    with pytest.raises(ConnectionWriteError, match=r"'airflow_api'.*http connection"):
        RestApiConnectionWriter("airflow_api").upsert("docker_ecr", host=HOST1, login="AWS", password="pw")


# -- the CLI -------------------------------------------------------------------------------------
@pytest.fixture
def boto_env(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS credentials the standard boto3 way: environment variables."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACLITEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.url)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["refresh-connection", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("boto_env")
def test_cli_writes_through_the_api_with_one_line(
    api: FakeAirflowApi, emu: EcrEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "--conn-id", "docker_ecr", "--registry", HOST1, "--api-conn-id", "airflow_api")
    assert (code, err) == (cli.EXIT_OK, "")
    assert out.count("\n") == 1
    assert out.startswith(f"airflow-ecr: wrote docker connection 'docker_ecr' for {HOST1}")
    assert api.connections["docker_ecr"]["password"] == emu.password(ACCT1)[0]
    assert emu.calls()[0]["access_key_id"] == "AKIACLITEST"


@pytest.mark.usefixtures("boto_env")
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--registry-id", "12345"], cli.EXIT_USAGE, "not a 12-digit"),
        (["--registry-id", ACCT1], cli.EXIT_USAGE, "needs --region"),
        (["--registry-id", ACCT1, "--region", "moon"], cli.EXIT_USAGE, "not an AWS region"),
        (["--registry", "registry.example.com"], cli.EXIT_USAGE, "not on an Amazon ECR host"),
        (["--registry", f"{ACCT1}.dkr.ecr.eu-west-1.amazonaws.com", "--region", "us-east-1"], cli.EXIT_USAGE, "Drop"),
        (["--registry-id", ACCT1, "--region", "ap-northeast-1"], cli.EXIT_AWS_CREDENTIALS, "not emulated"),
    ],
)
def test_cli_bad_input_exit_codes(
    api: FakeAirflowApi, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    got, out, err = run_cli(capsys, "--conn-id", "docker_ecr", *args, "--api-conn-id", "airflow_api")
    assert got == code, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("airflow-ecr: error: ") and message in err
    assert api.connections == {}


@pytest.mark.usefixtures("boto_env")
def test_cli_access_denied_and_outage_exit_codes(
    api: FakeAirflowApi, emu: EcrEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.set_faults(deny=True)
    code, _, err = run_cli(capsys, "--conn-id", "c", "--registry", HOST1, "--api-conn-id", "airflow_api")
    assert code == cli.EXIT_AWS_CREDENTIALS and "ecr:GetAuthorizationToken" in err
    emu.set_faults(deny=False, server_error=50)
    code, _, err = run_cli(capsys, "--conn-id", "c", "--registry", HOST1, "--api-conn-id", "airflow_api")
    assert code == cli.EXIT_ECR_SERVICE, err
    assert api.connections == {}


@pytest.mark.usefixtures("boto_env")
def test_cli_api_refusing_exit_code(api: FakeAirflowApi, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    set_api_connection(monkeypatch, api.url, "wrong")
    code, _, err = run_cli(capsys, "--conn-id", "c", "--registry", HOST1, "--api-conn-id", "airflow_api")
    assert code == cli.EXIT_WRITE
    assert api.url in err and "'airflow_api'" in err


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["refresh-connection", "--conn-id", "c"])  # neither --registry nor --registry-id
    assert info.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one of the arguments --registry --registry-id is required" in err


# -- the DAG factory and provider metadata -------------------------------------------------------
def test_refresh_dag_factory() -> None:
    from datetime import timedelta

    from airflow_ecr.dags import ecr_refresh_dag

    dag = ecr_refresh_dag(conn_id="docker_ecr", registry=HOST2, aws_conn_id="aws_test")
    assert dag.dag_id == "ecr_refresh_docker_ecr"
    (task,) = dag.tasks
    assert isinstance(task, EcrCredentialRegisterOperator)
    assert (task.conn_id_name, task.region_name, task.register_ids) == ("docker_ecr", REGION, [ACCT2])
    assert task.retries == 3
    assert dag.max_active_runs == 1
    assert timedelta(hours=6) in (getattr(dag, "schedule", None), getattr(dag, "schedule_interval", None))
    with pytest.raises(EcrConfigurationError, match=r"not on an Amazon ECR host"):
        ecr_refresh_dag(conn_id="c", registry="registry.example.com")


def test_operator_module_is_listed_in_provider_info() -> None:
    modules = [m for entry in get_provider_info()["operators"] for m in entry["python-modules"]]
    assert "airflow_ecr.operators.credentials" in modules


def test_provider_info_publishes_the_settings_defaults() -> None:
    """The defaults Airflow shows (``airflow config list``) are the ones the code uses."""
    from airflow_ecr import settings

    options = get_provider_info()["config"]["ecr"]["options"]
    assert options["cache_enabled"]["default"] == str(settings.DEFAULT_CACHE_ENABLED)
    assert float(options["refresh_ratio"]["default"]) == settings.DEFAULT_REFRESH_RATIO
    assert float(options["lock_timeout"]["default"]) == settings.DEFAULT_LOCK_TIMEOUT
    assert options["cache_dir"]["default"] == ""


def test_writer_follows_the_airflow_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_compat, "is_airflow_3", lambda: True)
    assert isinstance(default_writer("airflow_api"), RestApiConnectionWriter)
    with pytest.raises(EcrConfigurationError, match="set api_conn_id"):
        default_writer(None)
    monkeypatch.setattr(_compat, "is_airflow_3", lambda: False)
    assert isinstance(default_writer(None), OrmConnectionWriter)
