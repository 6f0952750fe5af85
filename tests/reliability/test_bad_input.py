"""
Bad input, one table: each case fails with its own exception type and one actionable sentence
(no chained traceback behind it). Parse-time cases fail when the DAG file is parsed (one of them
through a real DagBag); run-time cases fail when the task runs against the lab, and all of them
once more through ``airflow dags test`` on Airflow 3, sampled and scanned for tokens.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr.exceptions import (
    DockerDaemonError,
    EcrConfigurationError,
    EcrCredentialsError,
    EcrError,
    EcrPullError,
)
from airflow_ecr.operators.docker import EcrDockerOperator
from helpers.reliability_support import (
    CONN,
    LabTask,
    assert_clean_error,
    aws_connection,
    is_private_cache_file,
    lab_task,
    reliability_harness,
    run_scanned,
)

__all__ = ["lab_task"]

HOST = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
ALIAS = "ecr.example.com/app:1"


@dataclass
class Case:
    """One row: the operator's arguments, what to set up first, and what the error must say."""

    arguments: dict[str, Any]
    error: type[EcrError]
    needles: list[str]
    at_parse: bool = True
    setup: Callable[[LabTask], None] = field(default=lambda task: None)


def _no_credentials(task: LabTask) -> None:
    task.monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN.upper()}",
        json.dumps({"conn_type": "aws", "extra": {"region_name": "eu-west-1", "endpoint_url": task.lab.emulator_url}}),
    )
    _no_default_chain(task)


def _no_default_chain(task: LabTask) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        task.monkeypatch.delenv(name, raising=False)
    task.monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    task.monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    task.monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


CASES: dict[str, Case] = {
    # -- at parse time: the DAG file does not load ------------------------------------------
    "empty-image": Case({"image": ""}, EcrConfigurationError, ["is empty or contains whitespace"]),
    "spaces-in-image": Case({"image": f"{HOST}/my app:1"}, EcrConfigurationError, ["contains whitespace"]),
    "uppercase-repository": Case(
        {"image": f"{HOST}/MyApp:1"}, EcrConfigurationError, ["'MyApp'", "repository names must be lowercase"]
    ),
    "bad-digest": Case(
        {"image": f"{HOST}/app@sha256:xyz"}, EcrConfigurationError, ["malformed digest 'sha256:xyz'", "64 hex"]
    ),
    "non-ecr-host-not-declared": Case(
        {"image": "registry.example.com/app:1", "registry_id": "111111111111", "region_name": "eu-west-1"},
        EcrConfigurationError,
        ["is not on an Amazon ECR host", "nor on a declared alias", "[ecr] registry_aliases", "plain DockerOperator"],
    ),
    "account-id-not-12-digits": Case(
        {"image": ALIAS, "registry_id": "12345", "region_name": "eu-west-1"},
        EcrConfigurationError,
        ["'12345' is not a 12-digit AWS account id"],
    ),
    "region-not-a-region": Case(
        {"image": ALIAS, "registry_id": "111111111111", "region_name": "moon-1"},
        EcrConfigurationError,
        ["'moon-1' is not an AWS region name", "e.g. 'eu-west-1'"],
    ),
    "registry-ids-a-string": Case(
        {"image": f"{HOST}/app:1", "registry_ids": "222222222222"},
        EcrConfigurationError,
        ["registry_ids must be a list of 12-digit account id strings"],
    ),
    "registry-ids-of-ints": Case(
        {"image": f"{HOST}/app:1", "registry_ids": [222222222222]},
        EcrConfigurationError,
        ["registry_ids must be a list of 12-digit account id strings"],
    ),
    # -- at run time, against the lab -------------------------------------------------------
    "registry-in-another-partition": Case(
        {"image": "111111111111.dkr.ecr.cn-north-1.amazonaws.com.cn/lab/busybox:1"},
        EcrCredentialsError,
        ["AWS rejected the credentials", "is in the aws-cn partition", "only credentials of that partition"],
        at_parse=False,
    ),
    "no-aws-credentials": Case(
        {},
        EcrCredentialsError,
        [f"No AWS credentials found for aws_conn_id='{CONN}'", "put credentials or a role in the AWS connection"],
        at_parse=False,
        setup=_no_credentials,
    ),
    "access-denied": Case(
        {},
        EcrCredentialsError,
        ["is not allowed ecr:GetAuthorizationToken", "grant it", "ecr:BatchGetImage"],
        at_parse=False,
        setup=lambda task: task.emulator.faults(deny=True),
    ),
    "expired-session-credentials": Case(
        {},
        EcrCredentialsError,
        ["(ExpiredTokenException)", "invalid or have expired; renew them"],
        at_parse=False,
        setup=lambda task: task.emulator.faults(expired_keys=[task.access_key]),
    ),
    "unknown-aws-conn-id": Case(
        {"aws_conn_id": "aws_no_such_conn"},
        EcrCredentialsError,
        ["aws_conn_id='aws_no_such_conn' (no such Airflow connection", "No AWS credentials found"],
        at_parse=False,
        setup=_no_default_chain,
    ),
    "unreachable-daemon": Case(
        {"docker_url": "unix:///nonexistent/docker.sock"},
        DockerDaemonError,
        ["Cannot reach the Docker daemon at unix:///nonexistent/docker.sock", "set docker_url"],
        at_parse=False,
    ),
    "image-not-in-repository": Case(
        {"image": "LAB/lab/no-such-repo:1"},
        EcrPullError,
        ["was not found in", "check the repository name and tag"],
        at_parse=False,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_with_one_actionable_sentence(name: str, request: pytest.FixtureRequest) -> None:
    case = CASES[name]
    if case.at_parse:
        with pytest.raises(case.error) as err:
            EcrDockerOperator(task_id="bad", **case.arguments)
    else:
        request.applymarker(pytest.mark.lab)
        task: LabTask = request.getfixturevalue("lab_task")
        case.setup(task)
        arguments = dict(case.arguments)
        arguments["image"] = arguments.get("image", task.image()).replace("LAB", task.lab.accounts[0]["host"])
        with pytest.raises(case.error) as err:
            task.run(**arguments)
    assert_clean_error(err.value, *case.needles)


def test_parse_time_error_through_a_real_dagbag_is_one_clear_line(tmp_path: Path, monkeypatch) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag
    (tmp_path / "bad_dag.py").write_text(
        textwrap.dedent(
            f"""
            from datetime import datetime
            from airflow.sdk import DAG
            from airflow_ecr.operators.docker import EcrDockerOperator
            with DAG(dag_id="bad", schedule=None, start_date=datetime(2024, 1, 1)):
                EcrDockerOperator(task_id="t", image="{HOST}/MyApp:1")
            """
        )
    )
    message = (
        f"Image reference '{HOST}/MyApp:1' has an invalid repository name 'MyApp' (repository names must be lowercase)."
    )
    # What the UI shows with tracebacks off: exactly the sentence.
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACKS", "False")
    (error,) = DagBag(dag_folder=str(tmp_path)).import_errors.values()
    assert error == message
    # With Airflow's default (tracebacks on): the sentence is the last line, and no chained
    # exception (botocore's, a ValueError's) is shown behind it.
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACKS", "True")
    (error,) = DagBag(dag_folder=str(tmp_path)).import_errors.values()
    assert error.rstrip().splitlines()[-1] == f"airflow_ecr.exceptions.EcrConfigurationError: {message}"
    assert "During handling of the above exception" not in error and "direct cause" not in error


@pytest.mark.lab
@pytest.mark.airflow_run
@pytest.mark.timeout(400)
def test_run_time_bad_input_through_airflow_dags_test(lab, ecr_admin, tmp_path_factory, tmp_path) -> None:
    """Airflow 3 runs every run-time case as a task: each task's log says its sentence."""
    from helpers.airflow_harness import new_access_key

    harness = reliability_harness(lab, tmp_path_factory.getbasetemp())
    expired_key = new_access_key()
    ecr_admin.faults(deny=[lab.accounts[1]["account_id"]], expired_keys=[expired_key])
    env = {
        "AIRFLOW_CONN_AWS_EXPIRED": aws_connection(lab.emulator_url, expired_key),
        "AIRFLOW_CONN_AWS_NOCREDS": json.dumps({"conn_type": "aws", "extra": {"endpoint_url": lab.emulator_url}}),
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }
    cache_dir = tmp_path / "cache"
    run = run_scanned(harness, ecr_admin, lab, "reliability_bad_input", cache_dir=cache_dir, extra_env=env)
    text = run.result.all_text()
    expected = {
        "other_partition": "is in the aws-cn partition: only credentials of that partition are valid there.",
        "unknown_aws_conn_id": "aws_conn_id='aws_no_such_conn' (no such Airflow connection",
        "no_credentials": "No AWS credentials found for aws_conn_id='aws_nocreds'",
        "expired_session": "AWS rejected the credentials of aws_conn_id='aws_expired' (ExpiredTokenException)",
        "access_denied": "is not allowed ecr:GetAuthorizationToken for registry",
        "image_not_in_repository": "lab/no-such-repo:1 was not found in",
        "daemon_unreachable": "Cannot reach the Docker daemon at unix:///nonexistent/docker.sock",
    }
    for task_id, sentence in expected.items():
        assert sentence in text, (task_id, run.result.describe())
    for chained in ("During handling of the above exception", "The above exception was the direct cause"):
        assert chained not in text, run.result.describe()
    states = dict(harness.query("SELECT task_id, state FROM task_instance WHERE dag_id = ?", "reliability_bad_input"))
    assert set(states.values()) == {"failed"} and set(states) == set(expected), states
    # Failing tasks leak nothing either (only a token fetched for the not-found case is cached).
    assert run.samples >= 20
    assert run.leaks_outside(is_private_cache_file(cache_dir)) == []
