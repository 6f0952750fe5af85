"""
``airflow-ecr doctor`` without the lab: the ordering and stop-at-first-failure logic, the table
and JSON formats, the host cache rules on real directories, the daemon check against a socket
that does not exist, and the AWS checks through the real ``StsHook`` / ``EcrTokenSource``
against the in-process emulator (boto3 over real HTTP, STS and ECR on one ``endpoint_url``).
The registry and image checks render a fake daemon's answers here; against a real daemon:
tests/e2e/test_doctor_lab.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_ecr import cli, doctor, exit_codes
from airflow_ecr.doctor import Check, CheckResult, DoctorState, run_checks
from airflow_ecr.settings import EcrSettings
from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource
from airflow_ecr.tokens.token import EcrToken
from helpers.isolation import aws_test_connection, isolate_from_host, keep_airflow_logging

ACCT = "111111111111"
REGION = "eu-west-1"
IMAGE = f"{ACCT}.dkr.ecr.{REGION}.amazonaws.com/app/hello:1"
ACCESS_KEY = "AKIADOCTORUNIT"


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCT, REGION)]) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _isolated(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS identity from the environment; an ``aws_test`` connection to the emulator."""
    isolate_from_host(monkeypatch, tmp_path, "AIRFLOW_CONN_", "DOCKER_")
    aws_test_connection(monkeypatch, emu.url, ACCESS_KEY, REGION)
    keep_airflow_logging(monkeypatch)
    emu.reset()


def fake(name: str, status: str = "ok", code: int = 0, calls: list[str] | None = None, needs_image: bool = False):
    """A check that records its call and returns ``status``."""

    def run(state: DoctorState) -> CheckResult:
        if calls is not None:
            calls.append(name)
        return CheckResult(name, name.title(), status, f"{name} said {status}", exit_code=code)  # type: ignore[arg-type]

    return Check(name, name.title(), run, needs_image=needs_image)


# -- ordering and stopping ----------------------------------------------------------------------
def test_a_failure_skips_only_the_checks_that_need_it() -> None:
    calls: list[str] = []
    checks = [
        fake("one", "warn", calls=calls),
        fake("two", "fail", exit_codes.EXIT_DOCKER, calls=calls),
        Check("three", "Three", fake("three", calls=calls).run, needs=("two",)),
        Check("four", "Four", fake("four", calls=calls).run, needs=("three",)),
        Check("five", "Five", fake("five", "fail", exit_codes.EXIT_IMAGE, calls=calls).run, needs=("one",)),
        fake("six", calls=calls),
    ]
    results = run_checks(DoctorState(image=IMAGE), checks)
    assert calls == ["one", "two", "five", "six"]  # a warning is no reason to skip; a failure is
    assert [r.status for r in results] == ["warn", "fail", "skip", "skip", "fail", "ok"]
    # A check skipped behind a skipped one names the failure behind both.
    assert results[2].summary == results[3].summary == "not checked: fix Two first"
    assert doctor.exit_code(results) == exit_codes.EXIT_DOCKER  # the first failure's code, not the last's


def test_the_documented_needs() -> None:
    needs = {c.name: c.needs for c in doctor.CHECKS}
    assert needs == {
        "aws_identity": (),
        "ecr_permission": (),
        "host_cache": (),
        "docker_daemon": (),
        "registry": ("ecr_permission", "docker_daemon"),
        "image": ("registry",),
        "swarm": ("docker_daemon",),
    }


def test_warnings_and_infos_do_not_fail() -> None:
    results = run_checks(DoctorState(), [fake("one", "warn"), fake("two", "info"), fake("three")])
    assert doctor.exit_code(results) == 0


def test_checks_that_need_an_image_are_skipped_without_one() -> None:
    calls: list[str] = []
    checks = [fake("one", calls=calls), fake("two", calls=calls, needs_image=True), fake("three", calls=calls)]
    results = run_checks(DoctorState(), checks)
    assert calls == ["one", "three"]
    assert (results[1].status, results[1].summary) == ("skip", "not checked: no --image given")
    assert run_checks(DoctorState(image=IMAGE), checks)[1].status == "ok"


def test_the_documented_order() -> None:
    assert [c.name for c in doctor.CHECKS] == [
        "aws_identity",
        "ecr_permission",
        "host_cache",
        "docker_daemon",
        "registry",
        "image",
        "swarm",
    ]
    assert [c.name for c in doctor.CHECKS if c.needs_image] == ["ecr_permission", "registry", "image"]


def test_an_unexpected_error_fails_the_check_with_its_type_only() -> None:
    secret = "s3cr3t-in-an-exception"

    def boom(state: DoctorState) -> CheckResult:
        raise RuntimeError(secret)

    after = Check("after", "After", fake("after").run, needs=("boom",))
    results = run_checks(DoctorState(), [Check("boom", "Boom", boom), after])
    assert (results[0].status, results[0].exit_code) == ("fail", exit_codes.EXIT_UNEXPECTED)
    assert results[0].summary == "unexpected RuntimeError"
    assert secret not in json.dumps(doctor.to_json(results)) + doctor.render_table(results)
    assert results[1].status == "skip"
    with pytest.raises(RuntimeError):
        run_checks(DoctorState(), [Check("boom", "Boom", boom)], reraise=True)


# -- formats ------------------------------------------------------------------------------------
def sample_results() -> list[CheckResult]:
    return [
        CheckResult("aws_identity", "AWS identity", "ok", "account 1, arn:x", details={"account": "1"}),
        CheckResult("host_cache", "Host token cache", "warn", "mode 0755", fix="chmod 700 /c"),
        CheckResult("docker_daemon", "Docker daemon", "fail", "no socket", fix="start it", exit_code=6),
        CheckResult("swarm", "Swarm mode", "skip", "not checked: fix Docker daemon first"),
    ]


def test_json_is_parseable_and_complete() -> None:
    data = json.loads(json.dumps(doctor.to_json(sample_results(), IMAGE)))
    assert (data["ok"], data["exit_code"], data["image"]) == (False, 6, IMAGE)
    assert [c["name"] for c in data["checks"]] == ["aws_identity", "host_cache", "docker_daemon", "swarm"]
    assert data["checks"][0]["details"] == {"account": "1"}
    assert data["checks"][2] == {
        "name": "docker_daemon",
        "title": "Docker daemon",
        "status": "fail",
        "summary": "no socket",
        "fix": "start it",
        "exit_code": 6,
        "details": {},
    }
    assert doctor.to_json(sample_results()[:2])["ok"] is True


def test_table_shows_every_check_status_and_fix() -> None:
    table = doctor.render_table(sample_results(), IMAGE, width=100)
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if line.startswith("│") and line[2] != " "}
    assert set(rows) == {"AWS identity", "Host token cache", "Docker daemon", "Swarm mode"}
    assert "│ FAIL" in rows["Docker daemon"] and "│ warn" in rows["Host token cache"]
    assert "│ skipped" in rows["Swarm mode"]
    assert "fix: start it" in table and "fix: chmod 700 /c" in table
    assert table.splitlines()[0] == f"airflow-ecr doctor: {IMAGE}"
    assert table.splitlines()[-1] == "Docker daemon failed: exit code 6"
    assert all(line == line.rstrip() and len(line) <= 100 for line in table.splitlines())
    assert "\x1b[" not in table  # no colors unless asked
    assert "\x1b[" in doctor.render_table(sample_results(), color=True)


def test_table_verdict_without_failure() -> None:
    results = [*sample_results()[:2], sample_results()[3]]
    assert doctor.render_table(results).splitlines()[-1] == "no check failed (1 warning(s), 1 skipped)"


# -- the state ----------------------------------------------------------------------------------
def test_a_bad_image_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="Docker Hub"):
        DoctorState(image="app/hello:1")
    state = DoctorState(image=IMAGE)
    assert state.registry is not None and state.registry.account_id == ACCT
    assert state.reference is not None and (state.reference.repository, state.reference.tag) == ("app/hello", "1")


def test_scrub_removes_the_password_plain_and_encoded() -> None:
    state = DoctorState(image=IMAGE)
    state.token = EcrToken("AWS", "pa55w0rd-xyz", "https://h", 2e9, 1e9)
    encoded = base64.b64encode(b"AWS:pa55w0rd-xyz").decode()
    assert state.scrub(f"a pa55w0rd-xyz b {encoded} c") == "a <token> b <token> c"
    assert "pa55w0rd" not in repr(state)


# -- host cache on real directories -------------------------------------------------------------
def test_cache_missing_but_creatable_is_ok(tmp_path: Path) -> None:
    result = doctor.inspect_cache_dir(tmp_path / "a" / "cache")
    assert result.status == "ok" and "created (mode 0700) on first use" in result.summary
    assert not (tmp_path / "a").exists()  # the doctor does not create it


def test_cache_private_directory_is_ok(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    (directory / "k.json").write_text("{}")
    os.chmod(directory / "k.json", 0o600)
    result = doctor.inspect_cache_dir(directory)
    assert (result.status, result.details["mode"], result.details["entries"]) == ("ok", "0700", 1)


def test_cache_open_to_others_is_a_warning_with_the_chmod(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    os.chmod(directory, 0o755)
    result = doctor.inspect_cache_dir(directory)
    assert result.status == "warn" and "0755" in result.summary
    assert result.fix == f"chmod 700 {directory}"


def test_cache_file_open_to_others_is_a_warning(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    (directory / "k.json").write_text("{}")
    os.chmod(directory / "k.json", 0o644)
    result = doctor.inspect_cache_dir(directory)
    assert result.status == "warn" and "chmod 600" in (result.fix or "")


def test_cache_not_a_directory_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("")
    assert doctor.inspect_cache_dir(tmp_path / "cache").status == "warn"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_cache_of_another_user_is_a_warning(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    result = doctor.inspect_cache_dir(directory)
    assert result.status == "warn" and "not to this user" in result.summary


def test_cache_disabled_is_information(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_ENABLED", "False")
    assert doctor.check_host_cache(DoctorState()).status == "info"


def test_cache_bad_configuration_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__REFRESH_RATIO", "7")
    result = doctor.check_host_cache(DoctorState())
    assert (result.status, result.exit_code) == ("fail", exit_codes.EXIT_USAGE)


# -- daemon (no daemon needed to fail) ----------------------------------------------------------
def test_daemon_missing_socket(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/docker.sock"
    result = doctor.check_docker_daemon(DoctorState(docker_url=url))
    assert (result.status, result.exit_code) == ("fail", exit_codes.EXIT_DOCKER)
    assert result.summary == f"cannot reach the Docker daemon at {url}: no socket at {tmp_path}/docker.sock"
    assert "--docker-url" in (result.fix or "")


def test_daemon_url_defaults_to_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    assert doctor.docker_url(DoctorState()) == "unix:///var/run/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    assert doctor.docker_url(DoctorState()) == "tcp://127.0.0.1:1"
    assert doctor.docker_url(DoctorState(docker_url="unix:///x.sock")) == "unix:///x.sock"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("('Connection aborted.', PermissionError(13, 'Permission denied'))", "add the user to the docker group"),
        ("('Connection aborted.', ConnectionRefusedError(111, 'Connection refused'))", "nothing listens there"),
        ("Read timed out. (read timeout=60)", "did not answer within"),
        ("something else", "something else"),
    ],
)
def test_daemon_failure_messages(error: str, expected: str) -> None:
    assert expected in doctor.daemon_failure("unix:///run/docker.sock", error)


# -- registry and manifest: the daemon's answers, from a fake daemon ------------------------------
class FakeDaemon:
    """Answers ``POST /auth`` and ``GET /distribution`` with ``error``, as docker-py would raise it."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def _url(self, path: str) -> str:
        return path

    def _post_json(self, url: str, data: dict[str, str]) -> None:
        raise self.error

    def inspect_distribution(self, name: str, auth_config: dict[str, str]) -> None:
        raise self.error


def daemon_state(error: Exception) -> DoctorState:
    state = DoctorState(image=IMAGE)
    state.token = EcrToken("AWS", "pa55w0rd-xyz", "https://h", 2e9, 1e9)
    state.client = FakeDaemon(error)
    return state


@pytest.mark.parametrize(
    ("said", "registry_code", "image_code"),
    [
        ("unauthorized: authentication required", exit_codes.EXIT_AWS_CREDENTIALS, exit_codes.EXIT_AWS_CREDENTIALS),
        ("dial tcp 10.0.0.1:443: connect: connection refused", exit_codes.EXIT_REGISTRY, exit_codes.EXIT_REGISTRY),
        ("manifest unknown: manifest unknown", exit_codes.EXIT_REGISTRY, exit_codes.EXIT_IMAGE),
    ],
)
def test_registry_and_manifest_render_the_daemons_refusal(said: str, registry_code: int, image_code: int) -> None:
    from docker.errors import APIError

    state = daemon_state(APIError("500 Server Error", explanation=f"{said} (pa55w0rd-xyz)"))
    registry, image = doctor.check_registry(state), doctor.check_manifest(state)
    assert (registry.status, registry.exit_code, image.status, image.exit_code) == (
        "fail",
        registry_code,
        "fail",
        image_code,
    )
    for result in (registry, image):
        assert result.details["daemon_said"] == f"{said} (<token>)" and result.fix
        assert "pa55w0rd" not in json.dumps(doctor.to_json([result]))


def test_registry_and_manifest_when_the_daemon_goes_away() -> None:
    state = daemon_state(ConnectionError("('Connection aborted.', ConnectionRefusedError(111, 'Connection refused'))"))
    for result in (doctor.check_registry(state), doctor.check_manifest(state)):
        assert (result.status, result.exit_code) == ("fail", exit_codes.EXIT_DOCKER)
        assert "nothing listens there" in result.summary


# -- AWS checks against the in-process emulator (StsHook, EcrTokenSource) -----------------------
def test_identity_and_permission_ok(emu: EcrEmulator) -> None:
    state = DoctorState(image=IMAGE, aws_conn_id="aws_test")
    identity = doctor.check_aws_identity(state)
    assert identity.status == "ok", identity
    assert identity.details["account"] == ACCT
    assert identity.details["arn"] == state.arn == f"arn:aws:iam::{ACCT}:user/{ACCESS_KEY}"
    assert identity.details["sts_endpoint"] == emu.url
    permission = doctor.check_ecr_permission(state)
    assert permission.status == "ok", permission
    assert state.token is not None and state.token.password == emu.password(ACCT)[0]
    assert state.token.password not in json.dumps(doctor.to_json([identity, permission]))
    targets = [c["target"].rsplit(".", 1)[1] for c in emu.calls()]
    assert targets == ["GetCallerIdentity", "GetAuthorizationToken"]
    assert {c["access_key_id"] for c in emu.calls()} == {ACCESS_KEY}


def test_ecr_deny_names_the_action_and_the_arn(emu: EcrEmulator) -> None:
    emu.set_faults(deny=[ACCT])
    state = DoctorState(image=IMAGE, aws_conn_id="aws_test")
    results = run_checks(state, doctor.CHECKS[:3])
    assert [r.status for r in results] == ["ok", "fail", "ok"]  # the cache check needs no token
    assert results[1].exit_code == exit_codes.EXIT_AWS_CREDENTIALS
    assert results[1].fix is not None
    assert results[1].fix.startswith(f"grant ecr:GetAuthorizationToken to arn:aws:iam::{ACCT}:user/{ACCESS_KEY}")


@pytest.mark.parametrize(
    ("fault", "code"), [("invalid_keys", "InvalidClientTokenId"), ("expired_keys", "ExpiredToken")]
)
def test_rejected_credentials(emu: EcrEmulator, fault: str, code: str) -> None:
    emu.set_faults(**{fault: [ACCESS_KEY]})
    state = DoctorState(image=IMAGE, aws_conn_id="aws_test")
    identity, permission = run_checks(state, doctor.CHECKS[:2])
    assert identity.status == "warn" and f"({code}: " in identity.summary and "renew them" in (identity.fix or "")
    # The token check fails on its own and says what to do itself: nothing "above" to point to.
    assert (permission.status, permission.exit_code) == ("fail", exit_codes.EXIT_AWS_CREDENTIALS)
    assert "renew them" in (permission.fix or "") and "see above" not in (permission.fix or "")


def test_a_token_that_arrives_expired_is_a_warning_in_the_tasks_words(
    emu: EcrEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The host clock runs a day ahead of AWS's (moto's 2015 expiry reads the same: tests/e2e/test_moto.py).
    emu.set_faults(clock_skew=86400)
    state = DoctorState(image=IMAGE, aws_conn_id="aws_test")
    permission = doctor.check_ecr_permission(state)
    assert (permission.status, permission.exit_code) == ("warn", exit_codes.EXIT_OK), permission
    assert "token valid for" not in permission.summary
    assert permission.summary.startswith("ecr:GetAuthorizationToken granted, but ECR returned a token that expires at ")
    assert "already past by this host's clock" in permission.summary
    assert "Check the host clock" in (permission.fix or "") and permission.details["expired_on_arrival"]
    assert state.token is not None  # the later checks still try the token, as a task uses it once
    # The task, on the same answer, warns with the same sentence (one rule: policy.expired_on_arrival).
    cache = TokenCache(EcrSettings(cache_dir=tmp_path / "cache"))
    task_token = cache.get_one(EcrTokenSource.from_connection("aws_test"), state.require_registry())
    assert task_token.expires_at == state.token.expires_at
    said = permission.summary.split(", but ", 1)[1].split(" (by ")[0]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said in warning, (said, warning)


def test_no_credentials_names_the_missing_connection() -> None:
    result = doctor.check_aws_identity(DoctorState(aws_conn_id="no_such_conn"))
    assert result.status == "warn"
    assert "no AWS credentials found for aws_conn_id='no_such_conn'" in result.summary
    assert "boto3's default credential chain (no connection 'no_such_conn')" in result.summary


def test_sts_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DOWN",
        json.dumps(
            {
                "conn_type": "aws",
                "login": ACCESS_KEY,
                "password": "testing",
                "extra": {
                    "region_name": REGION,
                    "endpoint_url": "http://127.0.0.1:9",
                    "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
                },
            }
        ),
    )
    result = doctor.check_aws_identity(DoctorState(aws_conn_id="aws_down"))
    assert (result.status, result.exit_code) == ("warn", exit_codes.EXIT_OK)
    assert result.summary.startswith("cannot reach the STS API at http://127.0.0.1:9")
    assert f"access_key_id {ACCESS_KEY}" in result.summary and "region eu-west-1" in result.summary


# -- the command line, in process ---------------------------------------------------------------
def test_cli_bad_image_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "--image", "app/hello:1"]) == exit_codes.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("airflow-ecr: error: Image 'app/hello:1' has no registry host")
    assert cli.main(["doctor", "--image", "1111.dkr.ecr.eu-west-1.amazonaws.com/app:1", "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 2 and "12-digit account id" in data["error"] and data["checks"] == []


def test_cli_stops_at_the_daemon_and_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        [
            "doctor",
            "--aws-conn-id",
            "aws_test",
            "--image",
            IMAGE,
            "--docker-url",
            f"unix://{tmp_path}/no.sock",
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == data["exit_code"] == exit_codes.EXIT_DOCKER
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert statuses == {
        "aws_identity": "ok",
        "ecr_permission": "ok",
        "host_cache": "ok",
        "docker_daemon": "fail",
        "registry": "skip",
        "image": "skip",
        "swarm": "skip",
    }


def test_cli_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["doctor", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for code in ("6 Docker daemon unreachable", "7 registry unreachable", "8 image not found"):
        assert code in text
    assert re.search(r"--image REF", text)


def test_cli_maps_errors_to_exit_codes_in_one_place() -> None:
    from airflow_ecr.exceptions import ConnectionWriteError, EcrCredentialsError

    assert cli.error_result(EcrCredentialsError("no ecr:GetAuthorizationToken")) == (
        exit_codes.EXIT_AWS_CREDENTIALS,
        "no ecr:GetAuthorizationToken",
    )
    assert cli.error_result(ConnectionWriteError("db down"))[0] == exit_codes.EXIT_WRITE
    code, message = cli.error_result(RuntimeError("s3cr3t"))
    assert (code, "s3cr3t" in message) == (exit_codes.EXIT_UNEXPECTED, False)


def test_doctor_does_not_import_the_cli() -> None:
    import subprocess
    import sys

    script = "import sys, airflow_ecr.doctor\nprint('airflow_ecr.cli' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- private networks: an endpoint that serves ECR but not STS (issue 15) ---------------------------
def test_an_ecr_only_endpoint_makes_sts_a_warning_and_the_rest_runs(
    emu: EcrEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The emulator answers STS as an ECR-only VPC endpoint does: boto3 raises ResponseParserError."""
    emu.set_faults(sts_unserved=True)
    argv = ["doctor", "--aws-conn-id", "aws_test", "--image", IMAGE, "--docker-url", f"unix://{tmp_path}/no.sock"]
    code = cli.main([*argv, "--json"])
    data = json.loads(capsys.readouterr().out)
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert statuses == {
        "aws_identity": "warn",
        "ecr_permission": "ok",  # the pull's own call works through the same endpoint
        "host_cache": "ok",
        "docker_daemon": "fail",
        "registry": "skip",
        "image": "skip",
        "swarm": "skip",
    }
    assert code == data["exit_code"] == exit_codes.EXIT_DOCKER  # the first failure of what a pull needs
    identity = data["checks"][0]
    assert identity["summary"].startswith(f"{emu.url} does not serve STS"), identity
    assert "unexpected" not in identity["summary"] and "service_config.sts.endpoint_url" in identity["fix"]
    settings = identity["details"]["settings"]
    assert settings == {
        "connection": "aws_test",
        "access_key_id": ACCESS_KEY,
        "role_arn": None,
        "profile": None,
        "region": REGION,
        "endpoint": emu.url,
    }
    assert "testing" not in json.dumps(data)  # the connection's secret access key
    assert [c["target"].rsplit(".", 1)[1] for c in emu.calls()] == ["GetAuthorizationToken"]


# -- right advice for a typo in the image name --------------------------------------------------
def test_a_region_typo_advises_the_image_name_not_the_credentials(emu: EcrEmulator) -> None:
    state = DoctorState(image=f"{ACCT}.dkr.ecr.eu-west-2.amazonaws.com/app/hello:1", aws_conn_id="aws_test")
    identity, permission = run_checks(state, doctor.CHECKS[:2])
    assert identity.status == "ok"
    assert (permission.status, permission.exit_code) == ("fail", exit_codes.EXIT_AWS_CREDENTIALS)
    fix = permission.fix or ""
    assert "see above" not in fix and "credentials" not in fix, fix
    assert fix.startswith(f"check the account id ({ACCT}) and region (eu-west-2) in the image name"), fix


def test_an_account_typo_advises_the_image_name_not_the_credentials(emu: EcrEmulator) -> None:
    other = "222222222222"
    state = DoctorState(image=f"{other}.dkr.ecr.{REGION}.amazonaws.com/app/hello:1", aws_conn_id="aws_test")
    permission = run_checks(state, doctor.CHECKS[:2])[1]
    assert permission.status == "fail" and "see above" not in (permission.fix or "")
    assert (permission.fix or "").startswith(f"check the account id ({other}) and region ({REGION}) in the image")


def test_a_denial_by_another_accounts_registry_suggests_a_typo() -> None:
    from botocore.exceptions import ClientError

    from airflow_ecr.registry import parse_registry_host
    from airflow_ecr.tokens.aws_errors import classify, token_error, token_fix

    registry = parse_registry_host(f"222222222222.dkr.ecr.{REGION}.amazonaws.com")
    error = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetAuthorizationToken")
    denied = token_error(classify(error), "s", [registry])
    action = "ecr:GetAuthorizationToken"
    fix = token_fix(denied, action, "arn:x", REGION, registry=registry, caller_account=ACCT)
    assert fix.startswith(f"the image's registry 222222222222 is not the account of arn:x ({ACCT})"), fix
    assert "fix the account id in the image name" in fix and fix.endswith(f"grant {action} to arn:x")
    assert token_fix(denied, action, "arn:x", REGION, registry=registry, caller_account="222222222222").startswith(
        "grant "
    )
    # The registry refusing the manifest says the same when STS told the caller's account.
    from docker.errors import APIError

    state = daemon_state(APIError("401", explanation="unauthorized: authentication required"))
    state.registry = registry
    state.arn = f"arn:aws:iam::{ACCT}:user/doctor"
    state.reference = DoctorState(image=f"{registry.host}/hello:1").reference  # no path: no pull-through rule
    manifest = doctor.check_manifest(state)
    assert (manifest.status, manifest.exit_code) == ("fail", exit_codes.EXIT_AWS_CREDENTIALS), manifest
    assert (manifest.fix or "").startswith(f"the image's registry 222222222222 is not the account of {state.arn}")


def test_a_missing_image_names_the_default_tag_as_the_default() -> None:
    from docker.errors import APIError

    host = IMAGE.split("/", 1)[0]
    for image, what in ((f"{host}/hello", "tag latest (default)"), (f"{host}/hello:latest", "tag latest")):
        state = daemon_state(APIError("404 Client Error", explanation="manifest unknown: manifest unknown"))
        state.reference = DoctorState(image=image).reference  # no path: no pull-through rule
        manifest = doctor.check_manifest(state)
        assert manifest.status == "fail" and manifest.summary.startswith(f"{what} not found in"), manifest.summary


def test_an_unknown_registry_host_advises_the_image_name_first() -> None:
    from docker.errors import APIError

    typo = f"{ACCT}.dkr.ecr.eu-west-2.amazonaws.com"
    said = f'Get "https://{typo}/v2/": dial tcp: lookup {typo} on 127.0.0.53:53: no such host'
    state = daemon_state(APIError("500 Server Error", explanation=said))
    registry = doctor.check_registry(state)
    assert (registry.status, registry.exit_code) == ("fail", exit_codes.EXIT_REGISTRY)
    assert (registry.fix or "").startswith(f"check the account id ({ACCT}) and region ({REGION}) in the image name")
    assert "DNS" in (registry.fix or "")  # the network is still named, second
    refused = daemon_state(APIError("500", explanation="dial tcp 10.0.0.1:443: connect: connection refused"))
    assert not (doctor.check_registry(refused).fix or "").startswith("check the account id")


@pytest.mark.parametrize(
    "image",
    [
        f"{ACCT}.dkr.ecrr.{REGION}.amazonaws.com/app:1",
        f"{ACCT}.dkr.ecr.{REGION}.amazonaws.co/app:1",
        "registry.example.com/app:1",
    ],
)
def test_a_host_typo_names_the_host_not_options_doctor_lacks(image: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "--image", image]) == exit_codes.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert "registry_id" not in err and "region_name" not in err and "DockerOperator" not in err, err
    assert "Fix the registry host in the image name" in err


def test_a_declared_alias_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__REGISTRY_ALIASES", f"registry.example.com={ACCT}:{REGION}")
    state = DoctorState(image="registry.example.com/app:1")
    assert state.registry is not None and (state.registry.account_id, state.registry.host) == (
        ACCT,
        "registry.example.com",
    )


# -- pull-through cache rules -------------------------------------------------------------------
PTC_IMAGE = f"{ACCT}.dkr.ecr.{REGION}.amazonaws.com/docker-hub/library/busybox:1"


def ptc_manifest(said: str, image: str = PTC_IMAGE) -> CheckResult:
    from docker.errors import APIError

    state = daemon_state(APIError("404 Client Error", explanation=said))
    fresh = DoctorState(image=image, aws_conn_id="aws_test")
    state.registry, state.reference, state.aws_conn_id = fresh.registry, fresh.reference, "aws_test"
    return doctor.check_manifest(state)


@pytest.mark.parametrize("said", ["manifest unknown: manifest unknown", "unauthorized: authentication required"])
def test_a_repository_under_a_pull_through_rule_names_the_first_pull_permissions(emu: EcrEmulator, said: str) -> None:
    emu.set_faults(pull_through_rules=["ecr-public", "docker-hub"])
    result = ptc_manifest(said)
    assert result.status == "fail"
    fix = result.fix or ""
    assert fix.startswith("repository docker-hub/library/busybox is under the pull-through cache rule 'docker-hub'")
    assert "ecr:BatchImportUpstreamImage and ecr:CreateRepository" in fix, fix
    assert result.details["pull_through_cache"] == {
        "rule": "docker-hub",
        "upstream": "registry-1.docker.io",
        "unknown": None,
    }
    assert [c["target"].rsplit(".", 1)[1] for c in emu.calls()] == ["DescribePullThroughCacheRules"]


def test_a_pull_through_rule_doctor_may_not_list_is_a_hedged_sentence(emu: EcrEmulator) -> None:
    emu.set_faults(pull_through_rules=["docker-hub"], deny_actions=["DescribePullThroughCacheRules"])
    fix = ptc_manifest("manifest unknown: manifest unknown").fix or ""
    assert fix.startswith("push it, or fix the tag; if 'docker-hub' is the prefix of a pull-through cache rule, the")
    assert "AccessDeniedException" in fix and "ecr:DescribePullThroughCacheRules" in fix


def test_no_pull_through_sentence_without_a_rule(emu: EcrEmulator) -> None:
    emu.set_faults(pull_through_rules=["ecr-public"])
    assert ptc_manifest("manifest unknown: manifest unknown").fix == "push it, or fix the tag"
    assert ptc_manifest("manifest unknown: manifest unknown", image=IMAGE.replace("app/hello", "hello")).fix == (
        "push it, or fix the tag"
    )
    # app/hello has a path, so ECR is asked; "hello" has none, so no rule can hold it and ECR is not asked.
    assert [c["target"].rsplit(".", 1)[1] for c in emu.calls()] == ["DescribePullThroughCacheRules"]


# -- the UI's Test button -----------------------------------------------------------------------
def ecr_docker_connection(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    payload = {"conn_type": "ecr_docker", "extra": {"aws_conn_id": "aws_test", **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_ECR_TEST", json.dumps(payload))


def test_the_test_button_without_a_daemon_proves_the_token(
    emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_ecr.doctor.connection import EcrDockerConnectionHook

    ecr_docker_connection(monkeypatch, registry_id=ACCT, region_name=REGION)
    hook = EcrDockerConnectionHook(docker_conn_id="ecr_test", base_url=f"unix://{tmp_path}/no.sock")
    ok, line = hook.test_connection()
    assert ok, line
    assert line.startswith(f"ECR granted a token for {ACCT}.dkr.ecr.{REGION}.amazonaws.com to aws_conn_id='aws_test'")
    assert "the registry login was not checked" in line and "\n" not in line
    assert emu.password(ACCT)[0] not in line
    assert not (tmp_path / "cache").exists()  # the Test button writes no token cache


def test_the_test_button_says_what_failed_and_what_to_fix(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_ecr.doctor.connection import EcrDockerConnectionHook

    ecr_docker_connection(monkeypatch, registry_id=ACCT, region_name=REGION)
    emu.set_faults(deny=[ACCT])
    ok, line = EcrDockerConnectionHook(docker_conn_id="ecr_test").test_connection()
    assert not ok
    assert line.startswith("ECR permission failed: The AWS identity of aws_conn_id='aws_test' is not allowed"), line
    assert "Fix: grant ecr:GetAuthorizationToken to " in line and "\n" not in line
    ecr_docker_connection(monkeypatch, region_name=REGION)
    ok, line = EcrDockerConnectionHook(docker_conn_id="ecr_test").test_connection()
    assert (ok, line) == (
        False,
        "The connection names no registry: give it the registry's registry_id and region_name "
        "(and a host only for an alias of that registry).",
    )


# Issue 22, defect 3: an unsaved form is the UI user's input, not the deployment's configuration.
ALIAS_HOST = "collector.attacker.example"


def test_the_test_button_never_sends_the_token_to_an_alias_host(
    emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Fails on the old code: the daemon logged in to the form's alias host with the token ECR just
    issued (``/auth`` got ``serveraddress='collector.attacker.example'`` and the password).
    """
    from airflow_ecr.doctor.connection import EcrDockerConnectionHook
    from helpers.fake_http import EngineAPI, serving

    monkeypatch.setenv(
        "AIRFLOW_CONN_ECR_TEST",
        json.dumps(
            {
                "conn_type": "ecr_docker",
                "host": ALIAS_HOST,
                "extra": {"aws_conn_id": "aws_test", "registry_id": ACCT, "region_name": REGION},
            }
        ),
    )
    with serving(EngineAPI(), poll_interval=0.01) as engine:
        ok, line = EcrDockerConnectionHook(docker_conn_id="ecr_test", base_url=engine.url).test_connection()
    logins = engine.auths("/auth")
    assert [login["serveraddress"] for login in logins if login] == [f"{ACCT}.dkr.ecr.{REGION}.amazonaws.com"]
    assert ALIAS_HOST not in json.dumps(engine.requests)
    assert ok, line
    assert line.startswith(f"ECR granted a token for {ACCT}.dkr.ecr.{REGION}.amazonaws.com to aws_conn_id='aws_test'")
    assert f"the Docker daemon at {engine.url} logged in to it" in line
    assert f"{ALIAS_HOST} is an alias: the Test button sends it no token" in line
    assert emu.password(ACCT)[0] not in line


@pytest.mark.parametrize(
    ("aws_conn_id", "said"),
    [
        (None, "names no aws_conn_id"),
        ("", "names no aws_conn_id"),
        ("aws_missing", "aws_conn_id='aws_missing' does not exist"),
    ],
)
def test_the_test_button_mints_no_token_without_an_explicit_existing_aws_conn_id(
    emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, aws_conn_id: str | None, said: str
) -> None:
    """
    Fails on the old code: with no aws_conn_id (or one that does not exist) the token was minted
    with the API server's own default credentials (here: the environment's, pointed at the emulator).
    """
    from airflow_ecr.doctor.connection import EcrDockerConnectionHook

    extra = {"registry_id": ACCT, "region_name": REGION}
    if aws_conn_id is not None:
        extra["aws_conn_id"] = aws_conn_id
    monkeypatch.setenv("AIRFLOW_CONN_ECR_TEST", json.dumps({"conn_type": "ecr_docker", "extra": extra}))
    # The API server's own identity: what boto3's default chain would find there.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAPISERVERSOWN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.url)
    ok, line = EcrDockerConnectionHook(docker_conn_id="ecr_test").test_connection()
    assert [c for c in emu.calls() if c["target"].endswith("GetAuthorizationToken")] == []
    assert not ok
    assert said in line, line
    assert "set the connection's aws_conn_id to an existing AWS connection" in line, line


def test_the_image_policy_checks_run_only_with_a_policy_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    names = [c.name for c in doctor.checks_for(DoctorState())]
    assert "policy_scan" not in names and "policy_signature" not in names
    monkeypatch.setenv("AIRFLOW__ECR__IMAGE_POLICY", str(tmp_path / "image-policy.json"))
    checks = doctor.checks_for(DoctorState())
    assert [c.name for c in checks][-2:] == ["policy_scan", "policy_signature"]
    assert all(c.needs_image and c.needs == ("ecr_permission",) for c in checks[-2:])
