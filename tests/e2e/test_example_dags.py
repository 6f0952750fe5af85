"""
The shipped example DAGs (``src/airflow_ecr/example_dags``): every one imports through a real
``DagBag`` on Airflow 3 and 2.11 with no lab, no network and no settings (zero import errors), the
examples together cover every mode, and the runnable ones run green against the lab with
``airflow dags test``, configured only as their docstrings say.

``scripts/demo.sh`` runs the quickstart DAG too, but no test ran it: this one does, on both versions.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import airflow_ecr.example_dags
from airflow_ecr.testing import EmulatorClient
from helpers.airflow_harness import AirflowHarness, find_venv, new_access_key, shared_harness
from helpers.dag_checks import parse_examples

EXAMPLES = Path(airflow_ecr.example_dags.__file__).resolve().parent
QUICKSTART = "example_ecr_docker"


@pytest.mark.airflow_run
@pytest.mark.parametrize("version", [pytest.param("3", id="af3"), pytest.param("2", id="af2")])
def test_every_example_imports_and_every_mode_is_shown(version: str, tmp_path: Path) -> None:
    venv = find_venv(version)
    if venv is None:
        pytest.fail(f"no Airflow {version} virtualenv (scripts/venvs.sh {version})", pytrace=False)
    bag = parse_examples(venv, tmp_path)

    assert bag["import_errors"] == {}, bag["import_errors"]
    # Every example file yields a DAG (a file that silently defines none would pass the line above).
    files = sorted(p.name for p in EXAMPLES.glob("example_*.py"))
    assert bag["files"] == files, bag

    tasks = [(dag_id, *task) for dag_id, dag_tasks in bag["dags"].items() for task in dag_tasks]
    classes = {cls for _, _, cls, _ in tasks}
    for mode in (
        "EcrDockerOperator",
        "_EcrDockerDecoratedOperator",  # @task.ecr_docker
        "EcrDockerSwarmOperator",
        "EcrCredentialRegisterOperator",
        "EcrPinImagesOperator",
    ):
        assert mode in classes, f"no example uses {mode}: {tasks}"
    # The secrets backend mode: unmodified Docker provider tasks with an ecr:<host> conn id.
    plain = {cls for _, _, cls, conn in tasks if conn and conn.startswith("ecr:")}
    assert {"DockerOperator", "_DockerDecoratedOperator"} <= plain, tasks
    assert "example_ecr_refresh_dag" in bag["dags"], "the ecr_refresh_dag factory example is missing"


# -- run against the lab --------------------------------------------------------------------------
def example_env(**extra: str) -> dict[str, str]:
    """What the examples' docstrings tell a lab user to set."""
    return {"AIRFLOW_ECR_EXAMPLE_AWS_CONN_ID": "aws_lab", "AIRFLOW_ECR_EXAMPLE_NETWORK_MODE": "none", **extra}


@contextlib.contextmanager
def installed(harness: AirflowHarness, name: str) -> Iterator[None]:
    """An example in the shared harness's DAGs folder for the block (other tests' schedulers share it)."""
    target = harness.dags_folder / f"{name}.py"
    shutil.copy2(EXAMPLES / f"{name}.py", target)
    try:
        yield
    finally:
        target.unlink(missing_ok=True)


def assert_green(result: Any, output: str, ecr_admin: EmulatorClient, account: str) -> None:
    assert result.rc == 0, result.describe()
    text = result.all_text()
    assert any(output in line and "echo" not in line for line in text.splitlines()), result.describe()
    calls = ecr_admin.calls(access_key=result.access_key)
    # The pull was authenticated with a token from the (emulated) ECR API, by this run.
    assert calls and all(c["outcome"] == "ok" for c in calls), calls
    password = ecr_admin.password(account)
    assert password not in text, "the registry password appears in the run's output or logs"


@pytest.mark.lab
@pytest.mark.airflow_run
@pytest.mark.timeout(420)
def test_quickstart_dag_runs_green(
    airflow: AirflowHarness, ecr_admin: EmulatorClient, e2e_lab: dict[str, Any], tmp_path: Path
) -> None:
    """The quickstart's DAG, as shipped, pulls by its ECR name from the lab and runs (Airflow 3 and 2.11)."""
    # A cache of its own: the pull must fetch a token, not find one left by another test.
    with installed(airflow, QUICKSTART):
        result = airflow.dags_test(QUICKSTART, cache_dir=Path(tempfile.mkdtemp(dir=tmp_path)), extra_env=example_env())
    assert_green(result, "hello from an ECR image", ecr_admin, e2e_lab["accounts"][0]["account_id"])


@pytest.mark.lab
@pytest.mark.airflow_run
@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    ("dag_id", "output"),
    [
        ("example_ecr_decorator", "sum of squares computed in the ECR image: 14"),
        ("example_ecr_swarm", "hello from a swarm service"),
        ("example_ecr_secrets_backend", "hello through a mapped connection id"),
        ("example_ecr_pinned", "reported with a pinned image"),
    ],
)
def test_other_examples_run_green(
    dag_id: str,
    output: str,
    ecr_admin: EmulatorClient,
    e2e_lab: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    """The decorator, swarm, secrets backend and pinned examples, configured as their docstrings say (Airflow 3)."""
    harness = shared_harness("3", e2e_lab, tmp_path_factory.getbasetemp())
    if harness is None:
        pytest.fail("no Airflow 3 virtualenv (scripts/venvs.sh 3)", pytrace=False)
    access_key = new_access_key()
    env = example_env()
    if dag_id == "example_ecr_secrets_backend":
        account = e2e_lab["accounts"][0]
        kwargs = json.dumps(
            {
                "connections": {"docker_ecr": account["host"]},
                "endpoint_url": e2e_lab["emulator_url"],
                "region_name": "eu-west-1",
            }
        )
        # The backend takes boto3's default chain: the run's access key through the environment.
        env.update(
            AIRFLOW__SECRETS__BACKEND="airflow_ecr.secrets.ecr.EcrDockerConnectionBackend",
            AIRFLOW__SECRETS__BACKEND_KWARGS=kwargs,
            AWS_ACCESS_KEY_ID=access_key,
            AWS_SECRET_ACCESS_KEY="testing",
        )
    with installed(harness, dag_id):
        result = harness.dags_test(
            dag_id, cache_dir=Path(tempfile.mkdtemp(dir=tmp_path)), extra_env=env, access_key=access_key
        )
    assert_green(result, output, ecr_admin, e2e_lab["accounts"][0]["account_id"])
