"""Shared fixtures: the real lab (``airflow_ecr_lab``) and its ECR emulator's admin API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_ecr import process_state
from airflow_ecr.testing.emulator import EmulatorClient
from airflow_ecr_lab import emulator_client

# Airflow reads AIRFLOW_HOME when first imported: never let a test run touch ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-ecr-tests-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# As every deployment has (Airflow writes one into a new airflow.cfg): without a key Airflow falls
# back to NullFernet, and the encryption production runs would never run here.
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())

# The shared helpers (tests/helpers, on the path by pytest's `pythonpath` setting), after the above.
from airflow_ecr_lab.processes import stop_process
from helpers.airflow_harness import AirflowHarness, shared_harness
from helpers.processes import free_port, wait_for_port


@dataclass(frozen=True)
class Lab:
    """What ``lab.json`` says about a running lab (``raw`` has all of it)."""

    dir: Path
    docker_host: str
    emulator_url: str
    accounts: list[dict[str, Any]]
    anonymous_registry: dict[str, Any]
    images: dict[str, str]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, info: dict[str, Any]) -> Lab:
        keys = ("docker_host", "emulator_url", "accounts", "anonymous_registry", "images")
        return cls(Path(info["dir"]), **{k: info[k] for k in keys}, raw=info)

    def account(self, account_id: str | None = None) -> dict[str, Any]:
        """An account entry (the first one by default)."""
        return next(a for a in self.accounts if account_id in (None, a["account_id"]))


@pytest.fixture(autouse=True)
def new_process() -> Iterator[None]:
    """
    Each test starts as a new task process does: no ``[ecr]`` settings read, no shared token cache,
    no token in memory (:func:`airflow_ecr.process_state.reset`), and leaves none behind.
    """
    process_state.reset()
    yield
    process_state.reset()


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The lab at ``$AIRFLOW_ECR_LAB_DIR`` if it is up, else a fresh one for this session."""
    import airflow_ecr_lab as lab_module

    env_dir = os.environ.get(lab_module.ENV_DIR)
    if env_dir and lab_module.is_up(Path(env_dir)):
        yield Lab.from_json(lab_module.up(Path(env_dir), swarm=True))  # up: only adds the swarm if missing
        return
    directory = Path(tempfile.mkdtemp(prefix="ecrlab-", dir="/tmp"))
    try:
        info = lab_module.up(directory, swarm=True)
    except lab_module.LabError as exc:
        pytest.fail(f"cannot start the lab (needs root and scripts/setup-debian.sh): {exc}", pytrace=False)
    try:
        yield Lab.from_json(info)
    finally:
        lab_module.down(directory, purge=True, quiet=True)


@pytest.fixture
def emulator(lab: Lab) -> Iterator[EmulatorClient]:
    """The lab's emulator, with calls, faults and token policy reset around the test."""
    admin = emulator_client(lab.raw)
    admin.reset()
    policy = admin.config()
    yield admin
    admin.reset()
    if admin.config() != policy:
        admin.config(**policy)
        # Tokens minted under the test's policy must not leak into the next test.
        for account in lab.accounts:
            admin.revoke(account["account_id"])


@pytest.fixture
def aws(lab, emulator, monkeypatch, tmp_path):
    """The AWS connection ``aws_lab`` to the emulator, a private host cache, an empty memory cache, and
    the lab's proxy to the registries (for manifest requests): what in-process operator tests run with."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_LAB",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                # One attempt per call, so the emulator's call count is the number of fetches.
                "extra": {
                    "region_name": "eu-west-1",
                    "endpoint_url": lab.emulator_url,
                    "config_kwargs": {"retries": {"total_max_attempts": 1}},
                },
            }
        ),
    )
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "ecr-cache"))
    # Manifest requests (swarm services resolve their tag) reach the registries through the lab's proxy.
    monkeypatch.setenv("HTTPS_PROXY", lab.raw["https_proxy"])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", lab.raw["ca_cert"])
    return emulator


@pytest.fixture
def moto_url(tmp_path: Path) -> Iterator[str]:
    """A real ``moto_server`` on a free loopback port, stopped by its pid."""
    executable = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    if executable is None:
        pytest.fail("moto_server not installed: pip install 'moto[server]'", pytrace=False)
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, "moto_server", log=tmp_path / "moto.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        log.close()


# -- Airflow processes (tests/e2e, tests/reliability) ----------------------------------------
@pytest.fixture(scope="session")
def e2e_lab(lab: Any) -> dict[str, Any]:
    """The lab's lab.json, as the Airflow harness takes it."""
    return dict(lab.raw)


@pytest.fixture(params=[pytest.param("3", id="af3"), pytest.param("2", id="af2")])
def airflow(
    request: pytest.FixtureRequest, e2e_lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> AirflowHarness:
    """One Airflow environment per version (3 and 2.11) for the whole session, migrated once."""
    harness = shared_harness(request.param, e2e_lab, tmp_path_factory.getbasetemp())
    if harness is None:
        pytest.fail(f"no Airflow {request.param} virtualenv (scripts/venvs.sh {request.param})", pytrace=False)
    return harness


@pytest.fixture
def ecr_admin(emulator: Any, e2e_lab: dict[str, Any]) -> Iterator[EmulatorClient]:
    """
    The emulator's admin API under ECR's 12 h token policy for the test (``emulator`` resets it
    after). Calls are told apart by each run's unique access key.
    """
    admin = emulator_client(e2e_lab)
    with admin.ecr_policy([a["account_id"] for a in e2e_lab["accounts"]]):
        yield admin
