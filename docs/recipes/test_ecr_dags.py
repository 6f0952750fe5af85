"""
Tests of DAGs that pull ECR images, against airflow-ecr's ECR emulator and lab (no AWS account).

Save as ``tests/test_ecr_dags.py`` in your project, ``pip install "airflow-ecr[testing]"`` and the
lab (``airflow-ecr-lab``, from the repository's ``lab/`` directory: it is not on PyPI), and run
``pytest tests/test_ecr_dags.py`` as root (the lab runs a Docker engine). The first test needs
neither root, Docker nor the lab. Replace ``DAGS_FOLDER``, ``DAG_ID`` and ``OUTPUT`` with yours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr_lab import emulator_client
import airflow_ecr.example_dags
from airflow_ecr.testing import EcrEmulator, EmulatedAccount, EmulatorClient
import airflow_ecr_lab as ecr_lab_module

# Your DAGs; here the example DAG shipped with airflow-ecr, which prints OUTPUT from its image.
DAGS_FOLDER = Path(airflow_ecr.example_dags.__file__).parent
DAG_ID = "example_ecr_docker"
OUTPUT = "hello from an ECR image"


# -- the emulator alone: ECR's API in this process, no Docker ------------------------------------
def test_the_secrets_backend_settings_mint_a_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The [secrets] backend_kwargs of a deployment resolve a docker connection with a live token."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))  # before Airflow's first import
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "ecr-cache"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # any key: the emulator checks none
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    from airflow_ecr.secrets.ecr import EcrDockerConnectionBackend

    # The backend answers only inside a running task: running_task() marks one, as Airflow does.
    from airflow_ecr.testing import running_task

    emulator = EcrEmulator([EmulatedAccount("123456789012", "eu-west-1")]).start()
    try:
        backend = EcrDockerConnectionBackend(
            connections={"docker_ml": "123456789012.dkr.ecr.eu-west-1.amazonaws.com"},
            allowed_registries=["123456789012"],
            endpoint_url=emulator.url,  # what your deployment leaves out to reach the real ECR
            region_name="eu-west-1",
        )
        assert backend.get_connection("docker_ml") is None  # outside a task: the API server's case
        with running_task():
            connection = backend.get_connection("docker_ml")
        password, _ = emulator.password("123456789012")
        assert (connection.login, connection.password) == ("AWS", password)
        assert connection.host == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        calls = [call for call in emulator.calls() if call["target"].endswith("GetAuthorizationToken")]
        assert [call["outcome"] for call in calls] == ["ok"]
    finally:
        emulator.stop()


# -- the lab: a real Docker engine pulling by real ECR names --------------------------------------
@pytest.fixture(scope="session")
def ecr_lab() -> Iterator[dict[str, Any]]:
    """The lab at $AIRFLOW_ECR_LAB_DIR (default /tmp/airflow-ecr-lab): kept if already up, else started and stopped."""
    directory = ecr_lab_module.default_dir()
    if ecr_lab_module.is_up(directory):
        yield ecr_lab_module.load(directory)
        return
    try:
        info = ecr_lab_module.up(directory)
    except ecr_lab_module.LabError as err:
        pytest.fail(f"cannot start the lab: {err}", pytrace=False)
    try:
        yield info
    finally:
        ecr_lab_module.down(directory, purge=True)


@pytest.fixture(scope="session")
def airflow_env(ecr_lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of an Airflow of its own (home, metadata database, DAGs, token cache) wired to the lab."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # A cache of its own: the test fetches a token instead of finding one from another run.
        "AIRFLOW__ECR__CACHE_DIR": str(home / "ecr-cache"),
        "DOCKER_HOST": ecr_lab["docker_host"],
        # The lab's Docker engine has no bridge network: containers need network_mode="none".
        # The example DAG reads it from this variable; give your DAG's operators the same.
        "AIRFLOW_ECR_EXAMPLE_NETWORK_MODE": "none",
    }
    migrate = [sys.executable, "-m", "airflow", "db", "migrate"]
    result = subprocess.run(migrate, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return env


def test_the_dag_pulls_its_ecr_image_and_runs(ecr_lab: dict[str, Any], airflow_env: dict[str, str]) -> None:
    access_key = f"test-{uuid.uuid4().hex[:12]}"  # tells this run's ECR calls apart from others'
    aws_default = {
        "conn_type": "aws",
        "login": access_key,
        "password": "testing",
        "extra": {"region_name": "eu-west-1", "endpoint_url": ecr_lab["emulator_url"]},
    }
    env = {**airflow_env, "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_default)}
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    # The container's output (the lines with the command itself also contain it).
    assert any(OUTPUT in line and "echo" not in line for line in output.splitlines()), output[-5000:]
    calls = emulator_client(ecr_lab).calls(access_key=access_key)
    assert [call["outcome"] for call in calls if call["target"].endswith("GetAuthorizationToken")] == ["ok"]
