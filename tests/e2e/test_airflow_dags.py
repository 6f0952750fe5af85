"""Real Airflow (3.x and 2.11, from their own venvs) running the e2e DAGs with ``airflow dags test``
against the lab: a real Docker daemon pulling from ECR-style registries by their real ECR names,
with tokens from the ECR emulator.

Run: ``AIRFLOW_ECR_LAB_DIR=/tmp/airflow-ecr-lab pytest -m "lab and airflow_run" tests/e2e``
(bring the lab up first: ``python -m airflow_ecr_lab up --dir /tmp/airflow-ecr-lab``).
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_ecr.testing import EmulatorClient
from helpers.airflow_harness import AirflowHarness
from helpers.dag_checks import assert_no_secret, output_lines

pytestmark = [pytest.mark.lab, pytest.mark.airflow_run, pytest.mark.timeout(420)]

VERSIONS = [pytest.param("3", id="af3"), pytest.param("2", id="af2")]


def test_two_accounts(airflow: AirflowHarness, ecr_admin: EmulatorClient, e2e_lab: dict[str, Any]) -> None:
    """Two tasks pull by real ECR host names from two accounts in two regions, and print."""
    accounts = [a["account_id"] for a in e2e_lab["accounts"]]
    result = airflow.dags_test("ecr_two_accounts")
    passwords = ecr_admin.passwords(accounts)

    assert result.rc == 0, result.describe()
    text = result.all_text()
    for account in accounts:
        assert output_lines(text, f"hello-from-{account}"), f"no output of {account}: {result.describe()}"

    calls = ecr_admin.calls(access_key=result.access_key)
    assert sorted((c["region"], tuple(c["registry_ids"])) for c in calls) == sorted(
        (a["region"], (a["account_id"],)) for a in e2e_lab["accounts"]
    ), f"GetAuthorizationToken calls of this run: {calls}"
    assert all(c["outcome"] == "ok" for c in calls), calls

    assert_no_secret({"output": result.output, **result.logs}, passwords)


def test_decorator_returns_through_xcom(
    airflow: AirflowHarness, ecr_admin: EmulatorClient, e2e_lab: dict[str, Any]
) -> None:
    """``@task.ecr_docker`` runs a function in the ECR Python image; its value reaches XCom."""
    account = e2e_lab["accounts"][0]
    result = airflow.dags_test("ecr_decorator")
    password = ecr_admin.password(account["account_id"])

    assert result.rc == 0, result.describe()
    # 6 * 7 computed in the container, by the image's Python 3.11, inside Docker (/.dockerenv).
    assert airflow.xcom("ecr_decorator", "in_container") == "ecr-decorator-42-py311-True", result.describe()
    # The decorator records what it ran too, beside its return value.
    record = airflow.xcom("ecr_decorator", "in_container", "ecr_image")
    assert record["image"] == f"{account['host']}/lab/python:3.11" and record["pulled"] is True, record
    assert record["reference"] == f"{account['host']}/lab/python@{record['digest']}", record
    calls = ecr_admin.calls(access_key=result.access_key)
    assert [c["registry_ids"] for c in calls] == [[account["account_id"]]], calls
    assert_no_secret({"output": result.output, **result.logs}, {password})
