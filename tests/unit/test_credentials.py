"""
Stored-connection mode without Airflow processes: the naming rule and argument checks of
EcrCredentialRegisterOperator, tokens from the in-process ECR emulator (boto3 over real HTTP), the
REST API writer against a small fake of Airflow 3's connection API, the CLI's exit codes and the
DAG factory. The real api-server, the ORM on PostgreSQL and real DAG runs are in
tests/e2e/test_credentials_lab.py.
"""

from __future__ import annotations

import inspect
import json
import os
import secrets
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
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
from airflow_ecr.exceptions import (
    AirflowFernetError,
    ConnectionWriteError,
    EcrConfigurationError,
    EcrCredentialsError,
    EcrError,
)
from airflow_ecr.hooks.docker import EcrDockerHook
from airflow_ecr.operators.credentials import EcrCredentialRegisterOperator
from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr.provider_info import get_provider_info
from airflow_ecr.registry import resolve_host
from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount
from airflow_ecr.tokens.sources import EcrTokenSource
from helpers.fake_http import QuietHandler, loopback_url, serving
from helpers.fernet import break_fernet_like_cryptography_51, use_a_fernet_key
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
def _isolated(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A private token cache, no AWS identity from the environment, an ``aws_test`` connection."""
    isolate_from_host(monkeypatch, tmp_path, "AIRFLOW_CONN_")
    aws_test_connection(monkeypatch, emu.url, "AKIAUNITTEST", REGION)
    keep_airflow_logging(monkeypatch)
    emu.reset()


class RecordingWriter:
    """A ConnectionWriter keeping connections in a dict."""

    description = "a dict"

    def __init__(self) -> None:
        self.connections: dict[str, dict[str, str]] = {}

    def upsert(
        self, conn_id: str, *, host: str, login: str, password: str, overwrite_other_types: bool = False
    ) -> None:
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
        return loopback_url(self)


class _ApiHandler(QuietHandler):
    server: FakeAirflowApi

    def _handle(self) -> None:
        body = json.loads(self.body() or b"null")
        path = self.path.split("?")[0]
        self.server.requests.append((self.command, path))
        if path == "/auth/token":
            if body == {"username": "admin", "password": API_PASSWORD}:
                return self.reply(201, {"access_token": self.server.jwt})
            return self.reply(401, {"detail": "Invalid credentials"})
        if self.headers.get("Authorization") != f"Bearer {self.server.jwt}":
            return self.reply(401, {"detail": "Not authenticated"})
        if self.server.echo_body_with_422:
            return self.reply(422, {"detail": f"bad input {body}"})
        conns = self.server.connections
        if self.command == "POST" and path == "/api/v2/connections":
            if body["connection_id"] in conns:
                return self.reply(409, {"detail": "exists"})
            conns[body["connection_id"]] = body
            return self.reply(201, body)
        if self.command == "GET" and path.startswith("/api/v2/connections/"):
            conn_id = path.rsplit("/", 1)[1]
            if conn_id not in conns:
                return self.reply(404, {"detail": f"The Connection with connection_id: `{conn_id}` was not found"})
            return self.reply(200, {k: v for k, v in conns[conn_id].items() if k != "password"})
        if self.command == "PATCH" and path.startswith("/api/v2/connections/"):
            conn_id = path.rsplit("/", 1)[1]
            if conn_id not in conns:
                return self.reply(404, {"detail": f"The Connection with connection_id: `{conn_id}` was not found"})
            conns[conn_id].update(body)
            return self.reply(200, conns[conn_id])
        return self.reply(404, {"detail": "Not Found"})

    do_GET = do_POST = do_PATCH = _handle


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAirflowApi]:
    with serving(FakeAirflowApi()) as server:
        set_api_connection(monkeypatch, server.url, API_PASSWORD)
        yield server


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
        ("GET", "/api/v2/connections/docker_ecr"),
        ("POST", "/api/v2/connections"),
        ("GET", "/api/v2/connections/docker_ecr"),
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


class _Redirector(ThreadingHTTPServer):
    """Answers every request with ``status`` and a Location on ``target`` (another origin)."""

    def __init__(self, status: int, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _RedirectHandler)
        self.status, self.target = status, target

    @property
    def url(self) -> str:
        return loopback_url(self)


class _RedirectHandler(QuietHandler):
    server: _Redirector

    def _handle(self) -> None:
        self.body()
        self.reply(self.server.status, headers={"Location": f"{self.server.target}{self.path}"})

    do_GET = do_POST = do_PATCH = _handle


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("auth", ["password", "token"])
def test_api_writer_refuses_redirects_and_sends_nothing_to_the_other_origin(
    api: FakeAirflowApi, monkeypatch: pytest.MonkeyPatch, status: int, auth: str
) -> None:
    """A 307/308 would re-send the API password or the ECR token to another origin: it is an error."""
    # `api`, on another port, stands for the other origin
    with serving(_Redirector(status, api.url)) as redirector:
        if auth == "token":
            monkeypatch.setenv(
                "AIRFLOW_CONN_AIRFLOW_API",
                json.dumps({"conn_type": "http", "host": redirector.url, "extra": {"token": api.jwt}}),
            )
        else:
            set_api_connection(monkeypatch, redirector.url, API_PASSWORD)
        with pytest.raises(ConnectionWriteError) as info:
            RestApiConnectionWriter("airflow_api").upsert("docker_ecr", host=HOST1, login="AWS", password="pw-SECRET")
    assert api.requests == []  # the other origin received nothing: no password, no body
    assert f"HTTP {status}" in str(info.value) and redirector.url in str(info.value)
    assert "pw-SECRET" not in str(info.value) and API_PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        ({"host": "http://airflow-api.example.com:8080"}, "only over https"),
        ({"host": "airflow-api.example.com", "port": 8080}, "without a scheme"),
        ({"host": "127.0.0.1", "port": 8080}, "without a scheme"),  # a bare host never means http
        ({"host": "airflow-api.example.com", "schema": "http", "port": 8080}, "only over https"),
    ],
)
def test_api_writer_refuses_plain_http_and_bare_hosts_before_any_request(
    monkeypatch: pytest.MonkeyPatch, connection: dict[str, Any], message: str
) -> None:
    import requests

    sent: list[str] = []

    def record(self: Any, method: str, url: str, **kwargs: Any) -> None:
        sent.append(url)
        raise requests.ConnectionError(url)

    monkeypatch.setattr(requests.Session, "request", record)
    conn = {"conn_type": "http", "login": "admin", "password": API_PASSWORD, **connection}
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(conn))
    with pytest.raises(ConnectionWriteError, match=message) as info:
        RestApiConnectionWriter("airflow_api").upsert("docker_ecr", host=HOST1, login="AWS", password="pw")
    assert sent == []
    assert "'airflow_api'" in str(info.value) and str(info.value).count(". ") == 0  # one sentence


@pytest.mark.parametrize(
    ("host", "schema", "port", "insecure", "url"),
    [
        ("https://api.example.com", None, None, False, "https://api.example.com"),
        ("api.example.com", "https", 8443, False, "https://api.example.com:8443"),
        ("http://127.0.0.1:8080/", None, None, False, "http://127.0.0.1:8080"),
        ("http://localhost:8080", None, None, False, "http://localhost:8080"),
        ("http://[::1]:8080", None, None, False, "http://[::1]:8080"),
        ("127.0.0.1", "http", 8080, False, "http://127.0.0.1:8080"),
        ("http://airflow-api:8080", None, None, True, "http://airflow-api:8080"),
    ],
)
def test_api_url_is_https_or_loopback_or_declared_insecure(
    host: str, schema: str | None, port: int | None, insecure: bool, url: str
) -> None:
    from airflow_ecr.connections.writers import api_base_url

    assert api_base_url(host, schema=schema, port=port, conn_id="airflow_api", insecure_http=insecure) == url


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


def test_cli_uses_the_operators_default_aws_connection(
    api: FakeAirflowApi, emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No --aws-conn-id and no AWS_* variables: the token comes with aws_default, as for an operator.
    aws_test_connection(monkeypatch, emu.url, "AKIADEFAULTCONN", REGION)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", os.environ["AIRFLOW_CONN_AWS_TEST"])
    code, out, err = run_cli(capsys, "--conn-id", "docker_ecr", "--registry", HOST1, "--api-conn-id", "airflow_api")
    assert (code, err) == (cli.EXIT_OK, ""), err
    assert out.startswith(f"airflow-ecr: wrote docker connection 'docker_ecr' for {HOST1}")
    assert [c["access_key_id"] for c in emu.calls()] == ["AKIADEFAULTCONN"]
    # One default, the operators' (and doctor's): not a second spelling of it.
    parsed = cli.build_parser().parse_args(["refresh-connection", "--conn-id", "c", "--registry", HOST1])
    operators = [EcrCredentialRegisterOperator, EcrDockerOperator, EcrDockerHook]
    defaults = {inspect.signature(o.__init__).parameters["aws_conn_id"].default for o in operators}
    assert defaults == {parsed.aws_conn_id} == {cli.build_parser().parse_args(["doctor"]).aws_conn_id}


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
    assert (task.conn_id_name, task.registry) == ("docker_ecr", HOST2)
    assert [(c, r.host) for c, r in task.targets()] == [("docker_ecr", HOST2)]
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


# -- FIPS and dual-stack hosts are written as given ----------------------------------------------
GOV_REGION = "us-gov-west-1"
FIPS_HOST = f"{ACCT1}.dkr.ecr-fips.{GOV_REGION}.amazonaws.com"


@pytest.mark.parametrize(
    ("host", "fips"),
    [
        (FIPS_HOST, True),
        (f"{ACCT1}.dkr-ecr.{REGION}.on.aws", False),
        (f"{ACCT1}.dkr-ecr-fips.{GOV_REGION}.on.aws", True),
        (HOST1, False),
    ],
)
def test_refresh_dag_keeps_fips_and_dualstack_hosts_as_given(host: str, fips: bool) -> None:
    from airflow_ecr.dags import ecr_refresh_dag

    (task,) = ecr_refresh_dag(conn_id="docker_ecr", registry=f"https://{host}", aws_conn_id="aws_test").tasks
    ((conn_id, registry),) = task.targets()
    assert (conn_id, registry.host, registry.fips) == ("docker_ecr", host, fips)


def test_register_operator_accepts_one_host_instead_of_ids() -> None:
    operator = EcrCredentialRegisterOperator(
        task_id="t", conn_id_name="ecr_{region}", registry=FIPS_HOST, aws_conn_id=None
    )
    assert [(c, r.host) for c, r in operator.targets()] == [(f"ecr_{GOV_REGION}", FIPS_HOST)]
    both = EcrCredentialRegisterOperator(task_id="t", conn_id_name="c", registry=FIPS_HOST, register_ids=[ACCT1])
    with pytest.raises(EcrConfigurationError, match="not both"):
        both.targets()


def test_fips_host_is_written_as_given_with_a_token_from_the_fips_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through the DAG's task: real boto3 over HTTP; the client asked for is the FIPS one."""
    from airflow_ecr.dags import ecr_refresh_dag

    clients: list[tuple[str, str, bool]] = []
    real_client = EcrTokenSource.client

    def recording_client(self: EcrTokenSource, service: str, region: str, fips: bool = False) -> Any:
        clients.append((service, region, fips))
        return real_client(self, service, region, fips)

    monkeypatch.setattr(EcrTokenSource, "client", recording_client)
    writer = RecordingWriter()
    monkeypatch.setattr("airflow_ecr.operators.credentials.default_writer", lambda api_conn_id: writer)
    with EcrEmulator([EmulatedAccount(ACCT1, GOV_REGION)]) as gov:
        aws_test_connection(monkeypatch, gov.url, "AKIAUNITTEST", GOV_REGION)
        (task,) = ecr_refresh_dag(conn_id="docker_ecr", registry=FIPS_HOST, aws_conn_id="aws_test").tasks
        task.execute({})
        password = gov.password(ACCT1)[0]
    assert writer.connections == {"docker_ecr": {"host": FIPS_HOST, "login": "AWS", "password": password}}
    assert clients == [("ecr", GOV_REGION, True)]
    # Without the emulator's endpoint_url, that client is botocore's FIPS endpoint of the ECR API.
    fips_client = real_client(EcrTokenSource.from_connection(None), "ecr", GOV_REGION, True)
    assert fips_client.meta.endpoint_url == f"https://ecr-fips.{GOV_REGION}.amazonaws.com"


# -- connections of other types are not overwritten ----------------------------------------------
@pytest.fixture
def metadata_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A real SQLite metadata database with Airflow's connection table, behind ``settings.Session``."""
    import sqlalchemy
    from airflow import settings
    from sqlalchemy.orm import scoped_session, sessionmaker

    from airflow_ecr._compat import ConnectionModel

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'airflow.db'}")
    ConnectionModel.__table__.create(engine)
    session_factory = scoped_session(sessionmaker(bind=engine, expire_on_commit=False))
    monkeypatch.setattr(settings, "Session", session_factory)
    yield session_factory
    session_factory.remove()
    engine.dispose()


def _add(session_factory: Any, conn_id: str, conn_type: str) -> None:
    from airflow_ecr._compat import ConnectionModel

    session = session_factory()
    session.add(ConnectionModel(conn_id=conn_id, conn_type=conn_type, login="keep-login", password="keep-password"))
    session.commit()


def _row(session_factory: Any, conn_id: str) -> tuple[str, str | None, str | None]:
    from airflow_ecr._compat import ConnectionModel

    session = session_factory()
    conn = session.query(ConnectionModel).filter_by(conn_id=conn_id).one()
    session.expire_all()
    return conn.conn_type, conn.login, conn.password


def test_orm_writer_refuses_to_overwrite_a_connection_of_another_type(metadata_db: Any) -> None:
    _add(metadata_db, "aws_default", "aws")
    with pytest.raises(ConnectionWriteError, match=r"'aws_default'.*type 'aws'.*overwrite_other_types=True") as info:
        OrmConnectionWriter().upsert("aws_default", host=HOST1, login="AWS", password="pw-SECRET")
    assert "pw-SECRET" not in str(info.value) and str(info.value).count(". ") == 0
    assert _row(metadata_db, "aws_default") == ("aws", "keep-login", "keep-password")
    OrmConnectionWriter().upsert(
        "aws_default", host=HOST1, login="AWS", password="pw-SECRET", overwrite_other_types=True
    )
    assert _row(metadata_db, "aws_default") == ("docker", "AWS", "pw-SECRET")


@pytest.mark.parametrize("conn_type", ["docker", "ecr_docker"])
def test_orm_writer_updates_docker_connections_and_keeps_their_type(metadata_db: Any, conn_type: str) -> None:
    _add(metadata_db, "docker_ecr", conn_type)
    OrmConnectionWriter().upsert("docker_ecr", host=HOST1, login="AWS", password="pw-1")
    OrmConnectionWriter().upsert("new_ecr", host=HOST1, login="AWS", password="pw-2")
    assert _row(metadata_db, "docker_ecr") == (conn_type, "AWS", "pw-1")
    assert _row(metadata_db, "new_ecr") == ("docker", "AWS", "pw-2")


def test_orm_writer_names_cryptography_and_the_fix_when_airflows_fernet_breaks(
    metadata_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cryptography 51 with a Fernet key on Airflow 2.11 to 3.1: one sentence, never Airflow's traceback."""
    break_fernet_like_cryptography_51(monkeypatch)
    from airflow_ecr._compat import ConnectionModel

    with pytest.raises(AttributeError, match=r"MultiFer\w*' object has no attribute 'is_encrypted'"):
        ConnectionModel(conn_id="plain", password="pw")  # what Airflow itself now does
    with pytest.raises(AirflowFernetError) as info:
        OrmConnectionWriter().upsert("docker_ecr", host=HOST1, login="AWS", password="pw-SECRET")
    message = str(info.value)
    assert message.startswith("Cannot write connection 'docker_ecr' to the Airflow metadata database: Airflow ")
    assert "cryptography " in message and "install Airflow with its constraints file" in message
    assert "`pip install 'cryptography<51'`" in message
    assert "pw-SECRET" not in message and message.count(". ") == 0 and info.value.__cause__ is None
    assert (info.value.kind, info.value.exit_code) == ("airflow_fernet", 5)
    assert isinstance(info.value, ConnectionWriteError)  # callers that handle write errors handle it too


@pytest.mark.parametrize("aws_connection_in", ["environment", "metastore"])
def test_register_operator_names_cryptography_when_airflows_fernet_breaks(
    metadata_db: Any, monkeypatch: pytest.MonkeyPatch, aws_connection_in: str
) -> None:
    """
    The seed's DAG with cryptography 51 and a Fernet key: Airflow 2.11 cannot even read the AWS
    connection (from the environment it logs why and calls it missing; a row stored encrypted before
    cryptography was upgraded fails when decrypted), nor can 3.0 or 3.1; Airflow 3.3 (standing in for later) cannot
    store the login; either way the task fails with one sentence naming cryptography, never as a
    missing connection (which would fall back to the worker's own AWS identity).
    """
    if aws_connection_in == "metastore":
        if _compat.is_airflow_3():
            pytest.skip("Airflow 3 tasks read no metastore")
        from airflow_ecr._compat import ConnectionModel

        use_a_fernet_key(monkeypatch)
        conn = ConnectionModel(conn_id="aws_test", conn_type="aws", login="AKIAUNITTEST", password="testing")
        session = metadata_db()
        session.add(conn)
        session.commit()
        assert conn.is_encrypted  # stored as a deployment stores it
        monkeypatch.delenv("AIRFLOW_CONN_AWS_TEST")
    break_fernet_like_cryptography_51(monkeypatch)
    monkeypatch.setattr("airflow_ecr.operators.credentials.default_writer", lambda api_conn_id: OrmConnectionWriter())
    kwargs: dict[str, Any] = {"conn_id_name": "docker_ecr", "registry": HOST1, "aws_conn_id": "aws_test"}
    operator = EcrCredentialRegisterOperator(task_id="t", **kwargs)
    with pytest.raises(EcrError) as info:
        operator.execute({})  # type: ignore[arg-type]
    message = str(info.value)
    # Which of the two meets Airflow's Fernet first depends on the Airflow: up to 3.1 the AWS
    # connection from the environment is built with it (the matrix's 2.11, 3.0 and 3.1.8 cells),
    # on 3.3 only the stored login.
    written = "Cannot write connection 'docker_ecr' to the Airflow metadata database"
    read = "Cannot read AWS connection 'aws_test'"
    assert message.startswith((f"{read}: Airflow ", f"{written}: Airflow ")), message
    assert "`pip install 'cryptography<51'`" in message and message.count(". ") == 0
    assert "no such Airflow connection" not in message and info.value.__cause__ is None


def test_register_operator_passes_overwrite_other_types(
    metadata_db: Any, emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add(metadata_db, "airflow_api", "http")
    monkeypatch.setattr("airflow_ecr.operators.credentials.default_writer", lambda api_conn_id: OrmConnectionWriter())
    kwargs: dict[str, Any] = {"conn_id_name": "airflow_api", "registry": HOST1, "aws_conn_id": "aws_test"}
    with pytest.raises(ConnectionWriteError, match="type 'http'"):
        EcrCredentialRegisterOperator(task_id="t", **kwargs).execute({})  # type: ignore[arg-type]
    assert _row(metadata_db, "airflow_api") == ("http", "keep-login", "keep-password")
    EcrCredentialRegisterOperator(task_id="t", overwrite_other_types=True, **kwargs).execute({})  # type: ignore[arg-type]
    assert _row(metadata_db, "airflow_api") == ("docker", "AWS", emu.password(ACCT1)[0])


def test_api_writer_refuses_to_overwrite_a_connection_of_another_type(api: FakeAirflowApi) -> None:
    api.connections["airflow_api"] = {"connection_id": "airflow_api", "conn_type": "http", "password": "keep"}
    api.connections["docker_ecr"] = {"connection_id": "docker_ecr", "conn_type": "ecr_docker", "password": "old"}
    writer = RestApiConnectionWriter("airflow_api")
    with pytest.raises(ConnectionWriteError, match=r"'airflow_api'.*type 'http'.*overwrite_other_types=True"):
        writer.upsert("airflow_api", host=HOST1, login="AWS", password="pw-1")
    assert ("PATCH", "/api/v2/connections/airflow_api") not in api.requests
    assert api.connections["airflow_api"]["password"] == "keep"
    writer.upsert("docker_ecr", host=HOST1, login="AWS", password="pw-2")
    assert (api.connections["docker_ecr"]["conn_type"], api.connections["docker_ecr"]["password"]) == (
        "ecr_docker",
        "pw-2",
    )
    writer.upsert("airflow_api", host=HOST1, login="AWS", password="pw-3", overwrite_other_types=True)
    assert (api.connections["airflow_api"]["conn_type"], api.connections["airflow_api"]["password"]) == (
        "docker",
        "pw-3",
    )
