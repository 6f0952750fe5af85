"""Airflow discovers the provider: `airflow providers list|hooks` and the task decorator, on 2.11 and 3."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers.airflow_harness import find_venv


def airflow_bin(version: str) -> Path:
    venv = find_venv(version)
    if venv is None:
        pytest.fail(f"no Airflow {version} environment: run scripts/venvs.sh {version}", pytrace=False)
    return venv / "bin"


def run(version: str, tmp_path: Path, *args: str) -> str:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / f"home{version}"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    done = subprocess.run(
        [str(airflow_bin(version) / args[0]), *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.airflow_run
@pytest.mark.parametrize("version", ["3", "2"])
def test_airflow_discovers_the_provider(version, tmp_path):
    assert "airflow-ecr" in run(version, tmp_path, "airflow", "providers", "list", "-o", "plain")
    hooks = run(version, tmp_path, "airflow", "providers", "hooks", "-o", "plain")
    assert "ecr_docker" in hooks
    assert "airflow_ecr.doctor.connection.EcrDockerConnectionHook" in hooks
    # The connection form's ECR fields and hidden ones, as the UI gets them from the providers manager.
    code = (
        "from airflow.providers_manager import ProvidersManager as P; m = P(); "
        "print(sorted(k for k in m.connection_form_widgets if 'ecr_docker' in k)); "
        "print(m.field_behaviours.get('ecr_docker'))"
    )
    widgets, behaviour = run(version, tmp_path, "python", "-c", code).strip().splitlines()[-2:]
    assert "aws_conn_id" in widgets and "region_name" in widgets, widgets
    assert "hidden_fields" in behaviour, behaviour
    code = (
        "from airflow.providers_manager import ProvidersManager as P; m = P(); "
        "print(sorted(m.taskflow_decorators)); print(sorted(m.providers))"
    )
    out = run(version, tmp_path, "python", "-c", code)
    assert "'ecr_docker'" in out
    assert "'airflow-ecr'" in out
