"""
A named ``aws_conn_id`` that does not exist is never silent (issue 21, item 4).

As in the amazon provider, boto3's default chain then applies: the task log gets a WARNING naming
the id and where the default chain takes its credentials (never a secret), in every task process,
also when the identity index spares the process the connection lookup. ``[ecr]
require_aws_connection = True`` makes it one clear error before any AWS call, and doctor says
"no connection with id X". Real boto3 over HTTP to the in-process ECR emulator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_ecr import doctor, exit_codes, process_state
from airflow_ecr.doctor import DoctorState
from airflow_ecr.exceptions import EcrMissingConnectionError
from airflow_ecr.registry import parse_registry_host
from airflow_ecr.settings import EcrSettings
from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.credential_facts import default_chain_source
from airflow_ecr.tokens.sources import EcrTokenSource
from helpers.isolation import isolate_from_host, keep_airflow_logging, skip_unless_missing_connections_resolve

ACCT, REGION = "111111111111", "eu-west-1"
REG = parse_registry_host(f"{ACCT}.dkr.ecr.{REGION}.amazonaws.com")
ACCESS_KEY, SECRET_KEY = "AKIAWORKERSOWNKEY", "worker-secret-never-logged"
ENV_SOURCE = "the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"


@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCT, REGION)]) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def worker_credentials(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A worker with its own AWS keys in the environment (as with AWS_* variables), and no connections."""
    isolate_from_host(monkeypatch, tmp_path, "AIRFLOW_CONN_")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    keep_airflow_logging(monkeypatch)
    skip_unless_missing_connections_resolve("aws_nope")
    emu.reset()


def task_lookup(tmp_path: Path) -> str:
    """One new task process's token lookup with ``aws_conn_id='aws_nope'`` (the host cache shared)."""
    process_state.reset()
    source = EcrTokenSource.from_connection("aws_nope")
    return TokenCache(EcrSettings(cache_dir=tmp_path / "cache")).get_one(source, REG).password


def test_a_missing_connection_warns_naming_the_id_and_the_credentials_used(
    emu: EcrEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="airflow_ecr"):
        task_lookup(tmp_path)
    (warning,) = [r for r in caplog.records if r.name.startswith("airflow_ecr") and r.levelno == logging.WARNING]
    text = warning.getMessage()
    assert "No Airflow connection with id 'aws_nope'" in text and ENV_SOURCE in text
    assert "require_aws_connection" in text
    assert SECRET_KEY not in caplog.text
    assert len(emu.calls()) == 1  # the default chain was really used (as AwsBaseHook does)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="airflow_ecr"):
        task_lookup(tmp_path)  # a warm lookup: the identity index spares it the connection lookup ...
    assert len(emu.calls()) == 1
    assert "No Airflow connection with id 'aws_nope'" in caplog.text  # ... and it still warns


def test_require_aws_connection_makes_it_one_clear_error(
    emu: EcrEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__REQUIRE_AWS_CONNECTION", "True")
    with pytest.raises(EcrMissingConnectionError) as raised:
        task_lookup(tmp_path)
    message = str(raised.value)
    assert message == (
        "aws_conn_id='aws_nope' names no Airflow connection and [ecr] require_aws_connection is True: "
        f"create the AWS connection 'aws_nope' or fix aws_conn_id (boto3's default chain would have used {ENV_SOURCE})."
    )
    assert raised.value.kind == "missing_aws_connection" and raised.value.exit_code == exit_codes.EXIT_USAGE
    assert emu.calls() == []  # refused before any AWS call


def test_require_aws_connection_refuses_every_use_of_the_source(
    emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that catches the error and goes on with the same source still gets no default-chain token."""
    monkeypatch.setenv("AIRFLOW__ECR__REQUIRE_AWS_CONNECTION", "True")
    source = EcrTokenSource.from_connection("aws_nope")
    for _ in range(2):
        with pytest.raises(EcrMissingConnectionError):
            source.fetch([REG])
    assert emu.calls() == []


def test_require_aws_connection_also_stops_a_warm_lookup(
    emu: EcrEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turned on while the host cache still records the missing connection's identity."""
    task_lookup(tmp_path)
    monkeypatch.setenv("AIRFLOW__ECR__REQUIRE_AWS_CONNECTION", "True")
    with pytest.raises(EcrMissingConnectionError):
        task_lookup(tmp_path)


def test_an_existing_connection_and_no_id_do_not_warn(
    emu: EcrEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_THERE", '{"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}')
    with caplog.at_level(logging.WARNING, logger="airflow_ecr"):
        for conn_id in ("aws_there", None):
            TokenCache(EcrSettings(cache_dir=tmp_path / "cache")).get_one(EcrTokenSource.from_connection(conn_id), REG)
    assert "No Airflow connection" not in caplog.text


@pytest.mark.parametrize(
    ("environment", "files", "expected"),
    [
        ({"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s"}, {}, ENV_SOURCE),
        ({"AWS_PROFILE": "deploy"}, {}, "the profile 'deploy' of "),
        (
            {"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/irsa"},
            {},
            "web identity: the role arn:aws:iam::1:role/irsa with the token in AWS_WEB_IDENTITY_TOKEN_FILE",
        ),
        (
            {},
            {"credentials": "[default]\naws_access_key_id = AKIA2\naws_secret_access_key = s\n"},
            "the [default] profile of ",
        ),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials"}, {}, "container credentials"),
        ({}, {}, "this host's instance role (EC2 instance metadata), if it has one"),
        ({"AWS_EC2_METADATA_DISABLED": "true"}, {}, "nothing: no credentials"),
    ],
)
def test_the_default_chain_is_named_in_boto3s_order(
    tmp_path: Path, environment: dict[str, str], files: dict[str, str], expected: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    environ = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        **environment,
    }
    described = default_chain_source(environ)
    assert expected in described
    assert "s\n" not in described and "AKIA" not in described  # names where, never a key


def test_doctor_says_no_connection_with_that_id(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    result = doctor.check_aws_identity(DoctorState(aws_conn_id="aws_nope"))
    assert result.status == "warn"
    assert result.summary.startswith(
        f"no connection with id 'aws_nope'; boto3's default credential chain takes {ENV_SOURCE}"
    )
    assert f"user/{ACCESS_KEY}" in result.summary  # who the default chain turned out to be (STS)
    assert result.fix is not None and "create the AWS connection 'aws_nope'" in result.fix
    assert "access key or role_arn in the AWS connection" not in result.fix

    monkeypatch.setenv("AIRFLOW__ECR__REQUIRE_AWS_CONNECTION", "True")
    result = doctor.check_aws_identity(DoctorState(aws_conn_id="aws_nope"))
    assert (result.status, result.exit_code) == ("fail", exit_codes.EXIT_USAGE)
    assert result.summary.startswith("no connection with id 'aws_nope'")


def test_doctor_says_no_connection_with_that_id_when_there_are_no_credentials_either(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    result = doctor.check_aws_identity(DoctorState(aws_conn_id="aws_nope"))
    assert result.status == "warn" and result.summary.startswith("no connection with id 'aws_nope'")
    assert result.fix is not None and "create the AWS connection 'aws_nope'" in result.fix
