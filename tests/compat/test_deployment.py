"""
One compatibility-matrix cell, checked as a user would find it: a deployment built the way users
build theirs, with airflow-ecr's wheel installed into it (``scripts/compat.py`` does both and sets
``AIRFLOW_ECR_CELL_VENV``). This module runs from the test environment and drives the cell's
``airflow`` through the Airflow process harness, configured as deployments are (a Fernet key of its
own, the AWS connection in the metadata database, written by Airflow's ``airflow connections add``):

- Airflow lists the provider, its hook and its secrets backend;
- every example DAG loads through a real ``DagBag`` with zero import errors;
- one real DAG run against the lab (``dags/compat_cell.py``): ``EcrDockerOperator`` from two
  accounts, ``@task.ecr_docker``, an unmodified ``DockerOperator`` through the secrets backend, and
  ``EcrCredentialRegisterOperator`` (the ORM on Airflow 2, the REST API on Airflow 3).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr.testing import EmulatorClient
from helpers.airflow_harness import AirflowHarness, api_server, new_access_key
from helpers.dag_checks import assert_no_secret, output_lines, parse_examples

pytestmark = [pytest.mark.lab, pytest.mark.airflow_run, pytest.mark.timeout(600)]

CELL_VENV = Path(os.environ.get("AIRFLOW_ECR_CELL_VENV", "/nonexistent"))
DAG_FILE = Path(__file__).resolve().parent / "dags" / "compat_cell.py"
BACKEND = "airflow_ecr.secrets.ecr.EcrDockerConnectionBackend"


ACCESS_KEY = new_access_key()


@pytest.fixture(scope="module")
def cell(e2e_lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> AirflowHarness:
    """The cell's Airflow, one migrated AIRFLOW_HOME with only the cell DAG in its DAGs folder and
    ``aws_lab`` stored (encrypted with the cell's Fernet key) in its metadata database."""
    home = Path(tempfile.mkdtemp(prefix="compat-cell-", dir=tmp_path_factory.getbasetemp()))
    harness = AirflowHarness(
        CELL_VENV, home, e2e_lab, Path(e2e_lab.get("dir") or ""), dag_files=[], connections_in_db=True
    )
    shutil.copy2(DAG_FILE, harness.dags_folder / DAG_FILE.name)
    harness.migrate()
    stored = harness.store_aws_connection(ACCESS_KEY)
    # Airflow's own output, whole: scripts/compat.py reads known upstream symptoms from it.
    assert stored.returncode == 0, f"airflow connections add failed:\n{stored.stdout[-6000:]}"
    return harness


def test_the_connection_is_encrypted_with_the_cells_key(cell: AirflowHarness) -> None:
    """As in production: the stored password is Fernet ciphertext, not the NullFernet's plain text."""
    rows = cell.query("SELECT password, is_encrypted FROM connection WHERE conn_id = ?", "aws_lab")
    assert [(r["password"] != "testing", bool(r["is_encrypted"])) for r in rows] == [(True, True)], rows


def test_the_wheel_is_what_runs(cell: AirflowHarness) -> None:
    """Not this checkout: the cell imports airflow-ecr from its own site-packages."""
    done = cell.run_cli("version")
    assert done.returncode == 0, done.stdout
    code = "import airflow_ecr; print(airflow_ecr.__file__)"
    location = cell.run_python(code).strip().splitlines()[-1]
    assert location.startswith(str(CELL_VENV)), location


def test_airflow_lists_provider_hook_and_backend(cell: AirflowHarness) -> None:
    providers = json.loads(_json_output(cell, "providers", "list"))
    assert "airflow-ecr" in {p["package_name"] for p in providers}, providers
    hooks = _json_output(cell, "providers", "hooks")
    assert "ecr_docker" in hooks and "airflow_ecr.doctor.connection.EcrDockerConnectionHook" in hooks, hooks[-3000:]
    backends = _json_output(cell, "providers", "secrets")
    assert BACKEND in backends, backends[-3000:]


def test_every_example_dag_loads(cell: AirflowHarness, tmp_path: Path) -> None:
    bag = parse_examples(CELL_VENV, tmp_path)
    assert bag["import_errors"] == {}, bag["import_errors"]
    assert len(bag["dags"]) >= 6, sorted(bag["dags"])


def test_one_real_dag_run_of_every_mode(
    cell: AirflowHarness, ecr_admin: EmulatorClient, e2e_lab: dict[str, Any], tmp_path: Path
) -> None:
    accounts = [a["account_id"] for a in e2e_lab["accounts"]]
    backend_kwargs = json.dumps({"endpoint_url": e2e_lab["emulator_url"], "region_name": "eu-west-1"})
    with api_server(cell) as (port, api_env):
        env = {
            **api_env,
            "AIRFLOW__SECRETS__BACKEND": BACKEND,
            "AIRFLOW__SECRETS__BACKEND_KWARGS": backend_kwargs,
            "AIRFLOW__WORKERS__SECRETS_BACKEND": BACKEND,
            "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": backend_kwargs,
            # The secrets backend's boto3 session (it cannot read Airflow connections).
            "AWS_ACCESS_KEY_ID": new_access_key(),
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        result = cell.dags_test(
            "compat_cell", extra_env=env, cache_dir=tmp_path / "cache", timeout=420, access_key=ACCESS_KEY
        )
    passwords = ecr_admin.passwords(accounts)
    assert result.rc == 0, result.describe()
    text = result.all_text()
    expected = [f"compat-ecr-{a}" for a in accounts] + ["compat-secrets-backend", "compat-stored-connection"]
    for marker in expected:
        assert output_lines(text, marker), f"no {marker!r} in the run: {result.describe()}"
    assert cell.xcom("compat_cell", "decorated") == "compat-decorated-42-True", result.describe()
    if port is not None:
        assert f"to the Airflow REST API at http://127.0.0.1:{port}" in text, result.describe()
    rows = cell.query("SELECT conn_type, host, login FROM connection WHERE conn_id = ?", "compat_stored")
    assert [tuple(r) for r in rows] == [("docker", e2e_lab["accounts"][0]["host"], "AWS")], rows
    texts = {"output": result.output, **result.logs}
    if cell.version.startswith("3.0."):
        texts = {where: without_airflow_30_mask_debug(text) for where, text in texts.items()}
    assert_no_secret(texts, passwords)


# Airflow 3.0's `dags test` prints the task SDK's DEBUG lines, among them every value sent to the
# supervisor for masking: Airflow's own leak (of any connection's password, not only ECR tokens),
# gone in 3.1; documented in docs/compatibility.md and docs/security.md. Only these exact lines (one
# value, or the list of a token's forms airflow-ecr masks in one call) are left out of the scan.
_AIRFLOW_30_MASK_DEBUG = re.compile(
    r"\[debug\s*\] Sending request\s+msg=MaskSecret\(value=(?:'[^']*'|\['[^']*'(?:, '[^']*')*\]), name=None, "
    r"type='MaskSecret'\)$"
)


def without_airflow_30_mask_debug(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not _AIRFLOW_30_MASK_DEBUG.search(line))


def _json_output(cell: AirflowHarness, *args: str) -> str:
    done = cell.run_cli(*args, "-o", "json")
    assert done.returncode == 0, done.stdout[-3000:]
    # Airflow may log lines (alembic, plugins) before the document, which is one line.
    return next(line for line in reversed(done.stdout.splitlines()) if line.startswith("[{"))
