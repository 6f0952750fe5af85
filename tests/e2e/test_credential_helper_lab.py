"""
``docker-credential-airflow-ecr`` with real parts: the lab's Docker engine pulls ECR images by their
real names through the docker CLI and through the docker provider's operators (Airflow 3 and 2.11),
with the logins from Docker's ``config.json`` as ``airflow-ecr configure-docker`` writes it, the helper
found on PATH (the venv's bin), and tokens from the lab's ECR emulator.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr.testing.emulator import EmulatorClient
from helpers.airflow_harness import AirflowHarness, new_access_key
from helpers.lab_engine import remove_local_image
from helpers.upstream_examples import edited, example_dag

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

DAG_ID = "docker_credential_helper"
DOCKER = shutil.which("docker")


def helper_env(lab: dict[str, Any], tmp_path: Path, access_key: str, bin_dir: Path) -> dict[str, str]:
    """A worker's environment: a fresh AIRFLOW_HOME, the lab's AWS connection, a private cache, Docker's config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "DOCKER_", "PYTEST_"))}
    connection = {
        "conn_type": "aws",
        "login": access_key,
        "password": "testing",
        "extra": {"region_name": "eu-west-1", "endpoint_url": lab["emulator_url"]},
    }
    env.update(
        {
            "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__ECR__CACHE_DIR": str(tmp_path / "cache"),
            "AIRFLOW__ECR__AWS_CONN_ID": "aws_lab",
            "AIRFLOW_CONN_AWS_LAB": json.dumps(connection),
            "AWS_EC2_METADATA_DISABLED": "true",
            "DOCKER_HOST": lab["docker_host"],
            "DOCKER_CONFIG": str(tmp_path / "docker"),
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    return env


def run(
    argv: list[str], env: dict[str, str], stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.skipif(DOCKER is None, reason="no docker CLI on this machine")
def test_docker_pull_through_the_helper(e2e_lab: dict[str, Any], emulator: EmulatorClient, tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    key = new_access_key()
    env = helper_env(e2e_lab, tmp_path, key, bin_dir)
    host = e2e_lab["accounts"][0]["host"]
    image = f"{host}/lab/busybox:1"
    assert DOCKER is not None

    configured = run([str(bin_dir / "airflow-ecr"), "configure-docker", host], env)
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert json.loads((tmp_path / "docker" / "config.json").read_text()) == {"credHelpers": {host: "airflow-ecr"}}
    checked = run([str(bin_dir / "airflow-ecr"), "configure-docker", "--check", host], env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    for attempt in (1, 2):  # cold (one GetAuthorizationToken), then warm (none)
        remove_local_image(e2e_lab, image)
        pulled = run([DOCKER, "pull", image], env)
        assert pulled.returncode == 0, f"pull {attempt}: {pulled.stdout}{pulled.stderr}"
        assert len(emulator.calls(access_key=key)) == 1, emulator.calls(access_key=key)

    # A host the helper does not serve: Docker is told "not found" and goes on anonymously.
    anonymous = run([str(bin_dir / "docker-credential-airflow-ecr"), "get"], env, stdin="docker.io\n")
    assert (anonymous.returncode, anonymous.stdout) == (1, "credentials not found in native keychain\n")

    # The registry itself refuses a token that is no longer valid (revoked here, as rotation or
    # expiry does): the pull fails with the registry's answer.
    emulator.revoke(e2e_lab["accounts"][0]["account_id"])
    remove_local_image(e2e_lab, image)
    refused = run([DOCKER, "pull", image], env)
    assert refused.returncode != 0
    assert any(word in (refused.stdout + refused.stderr).lower() for word in ("unauthorized", "no basic auth")), (
        refused.stdout + refused.stderr
    )
    secret = emulator.password(e2e_lab["accounts"][0]["account_id"])
    assert secret not in refused.stdout + refused.stderr + pulled.stdout + pulled.stderr


@pytest.mark.airflow_run
def test_example_docker_shape_through_configuration_alone(
    airflow: AirflowHarness, e2e_lab: dict[str, Any], emulator: EmulatorClient, tmp_path: Path
) -> None:
    """DockerOperator, @task.docker and DockerSwarmOperator without docker_conn_id, on Airflow 3 and 2.11."""
    docker_config = tmp_path / "docker"
    extra = {"DOCKER_CONFIG": str(docker_config), "AIRFLOW__ECR__AWS_CONN_ID": "aws_lab"}
    hosts = [a["host"] for a in e2e_lab["accounts"]]
    configured = airflow.run_cli("configure-docker", *hosts, env=airflow.env(extra=extra), program="airflow-ecr")
    assert configured.returncode == 0, configured.stdout
    remove_local_image(e2e_lab, f"{hosts[1]}/lab/busybox:1")  # the swarm service must pull it with the login

    result = airflow.dags_test(DAG_ID, extra_env=extra, cache_dir=tmp_path / "cache", timeout=240)

    assert result.rc == 0, result.describe()
    text = result.all_text()
    assert "helper-swarm" in text, result.describe()
    assert airflow.xcom(DAG_ID, "decorated") == "in-container-True", result.describe()
    calls = emulator.calls(access_key=result.access_key)
    # One call per registry: the helper's processes share the host cache (single flight, warm index).
    assert sorted(tuple(c["registry_ids"]) for c in calls) == [("111111111111",), ("222222222222",)], calls
    assert all(c["outcome"] == "ok" for c in calls), calls
    # One index record per registry: the tasks (each with its own AIRFLOW_CTX_* variables) shared it.
    assert len(list((tmp_path / "cache").glob("*.helper"))) == 2
    for account in e2e_lab["accounts"]:
        assert emulator.password(account["account_id"]) not in text


@pytest.mark.airflow_run
def test_airflows_own_example_docker_dag_pulls_an_ecr_image_through_configuration_alone(
    airflow: AirflowHarness, e2e_lab: dict[str, Any], emulator: EmulatorClient, tmp_path: Path
) -> None:
    """
    The docker provider's own ``example_docker.py``, read from the sdist of the installed provider,
    with its image changed to an ECR image and nothing of airflow-ecr in it: the pull goes through
    ``docker-credential-airflow-ecr``, configured by ``airflow-ecr configure-docker``. The other
    edits are what this machine forces, each stated (and each must still match upstream).
    """
    image = f"{e2e_lab['accounts'][0]['host']}/lab/busybox:1"
    text = example_dag(airflow.venv, "apache-airflow-providers-docker", "tests/system/docker/example_docker.py")
    dag = edited(text, [
        ('image="centos:latest"', f'image="{image}"', "the one change the DAG's author would make"),
        ('docker_url="unix://var/run/docker.sock"', f'docker_url="{e2e_lab["docker_host"]}"',
         "the lab's engine; the tests create no system socket"),
        ('network_mode="bridge"', 'network_mode="none"', "the lab's engine has no bridge"),
        ('command="/bin/sleep 30"', 'command="/bin/sleep 1"', "time"),
        ("from tests_common.test_utils.system_tests import get_test_run  # noqa: E402\n", "",
         "Airflow's own test harness, not installed"),
        ("test_run = get_test_run(dag)\n", "", "Airflow's own test harness, not installed"),
    ] + ([] if airflow.major >= 3 else [
        ("from airflow.providers.standard.operators.bash import BashOperator",
         "from airflow.operators.bash import BashOperator", "Airflow 2.11 has no standard provider"),
    ]))  # fmt: skip
    (airflow.dags_folder / "example_docker_upstream.py").write_text(dag)
    extra = {"DOCKER_CONFIG": str(tmp_path / "docker"), "AIRFLOW__ECR__AWS_CONN_ID": "aws_lab"}
    configured = airflow.run_cli(
        "configure-docker", e2e_lab["accounts"][0]["host"], env=airflow.env(extra=extra), program="airflow-ecr"
    )
    assert configured.returncode == 0, configured.stdout
    remove_local_image(e2e_lab, image)  # so that the task's pull reaches the registry with the helper's login
    try:
        result = airflow.dags_test("docker_test", extra_env=extra, cache_dir=tmp_path / "cache", timeout=240)
    finally:
        (airflow.dags_folder / "example_docker_upstream.py").unlink()
    assert result.rc == 0, result.describe()
    calls = emulator.calls(access_key=result.access_key)
    assert [tuple(c["registry_ids"]) for c in calls] == [("111111111111",)], calls
    assert emulator.password("111111111111") not in result.all_text()


@pytest.mark.airflow_run
def test_where_a_helper_process_finds_the_aws_connection(
    airflow: AirflowHarness, e2e_lab: dict[str, Any], emulator: EmulatorClient, tmp_path: Path
) -> None:
    """
    A helper process is not a task: it reads ``[ecr] aws_conn_id`` as a standalone Airflow process
    does. Measured per origin of the connection: an ``AIRFLOW_CONN_*`` variable, a secrets backend
    (Airflow's own local-filesystem backend), the metadata database (written by ``airflow connections add``).
    Airflow 2.11 reaches all three; Airflow 3 the first two only.
    """
    host = e2e_lab["accounts"][0]["host"]
    outcomes: dict[str, str] = {}
    for origin in ("environment", "secrets backend", "metadata database"):
        key = new_access_key()
        conn_id = f"aws_helper_{key.lower()}"
        connection = json.loads(airflow.aws_connection(key))
        extra = {
            "AIRFLOW__ECR__AWS_CONN_ID": conn_id,
            "AIRFLOW__ECR__CACHE_DIR": str(tmp_path / origin.replace(" ", "-")),
        }
        if origin == "environment":
            extra[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
        elif origin == "secrets backend":
            path = tmp_path / "connections.json"
            path.write_text(json.dumps({conn_id: connection}))
            extra["AIRFLOW__SECRETS__BACKEND"] = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
            extra["AIRFLOW__SECRETS__BACKEND_KWARGS"] = json.dumps({"connections_file_path": str(path)})
        else:
            added = airflow.run_cli("connections", "add", conn_id, "--conn-json", json.dumps(connection))
            assert added.returncode == 0, added.stdout
        env = airflow.env(extra=extra)
        env.pop("AIRFLOW_CONN_AWS_LAB", None)
        got = airflow.run_cli("get", env=env, program="docker-credential-airflow-ecr", stdin_text=host)
        calls = emulator.calls(access_key=key)
        outcomes[origin] = "token" if got.returncode == 0 and len(calls) == 1 else f"rc={got.returncode}"
        if got.returncode != 0:
            outcomes[origin] += ": " + got.stdout.strip().splitlines()[-1][:300]
    print(f"\n[credential helper, Airflow {airflow.version}] {outcomes}")
    assert outcomes["environment"] == "token", outcomes
    assert outcomes["secrets backend"] == "token", outcomes
    if airflow.major >= 3:
        # Outside a task, Airflow 3's connection lookup (the task SDK's) does not read the metadata
        # database even where this process could reach it: the id names no connection, boto3's default
        # chain (empty here) is used, and the helper says so in one line (docs/credential-helper.md).
        assert outcomes["metadata database"].startswith("rc=3:"), outcomes
        assert "no such Airflow connection" in outcomes["metadata database"], outcomes
    else:
        assert outcomes["metadata database"] == "token", outcomes
