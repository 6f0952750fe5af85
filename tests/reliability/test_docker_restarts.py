"""
The Docker side restarting under the tasks, on a private lab of this module (it restarts the
engine and a registry, so it must not disturb the session's shared lab):

- the Docker daemon restarted between two tasks: the second task succeeds on the cached token;
- the registry stopped while a pull of the bigger ``lab/python:3.11`` image runs: the task fails
  as ``DockerOperator`` would (a pull error, no retry of a non-credentials error), the cached
  token is not wrongly dropped, and once the registry is back the next task succeeds on it.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import pytest

import airflow_ecr_lab as lab_module
from airflow_ecr.exceptions import EcrPullError
from airflow_ecr_lab import emulator_client
from helpers.reliability_support import LabTask, remove_local

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def private_lab() -> Iterator[Any]:
    directory = Path(tempfile.mkdtemp(prefix="ecrlab-restarts-", dir="/tmp"))
    try:
        info = lab_module.up(directory)
    except lab_module.LabError as exc:
        pytest.fail(f"cannot start a private lab: {exc}", pytrace=False)
    try:
        yield SimpleNamespace(**{**info, "dir": directory})
    finally:
        lab_module.down(directory, purge=True, quiet=True)


@pytest.fixture
def restart_task(private_lab: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LabTask]:
    emulator = emulator_client(vars(private_lab))  # lab.json's fields, and its directory
    try:
        yield LabTask(private_lab, emulator, monkeypatch, tmp_path / "ecr-cache")
    finally:
        # Whatever happened, leave the lab healthy for the next test.
        for account in private_lab.accounts:
            lab_module.start_registry(private_lab.dir, account["account_id"])
        assert lab_module.is_up(private_lab.dir)


def test_daemon_restarted_between_two_tasks(restart_task: LabTask) -> None:
    assert restart_task.run(command=["echo", "before"]) == "before"
    lab_module.restart_dockerd(restart_task.lab.dir)
    assert restart_task.run(command=["echo", "after"]) == "after"
    assert len(restart_task.calls()) == 1  # the second task was served by the host cache


def registry_log(lab: Any) -> Path:
    return Path(lab.dir) / "registries" / lab.accounts[0]["account_id"] / "registry.log"


def test_registry_stopped_during_a_pull_fails_like_docker_operator_and_caches_nothing_wrongly(
    restart_task: LabTask,
) -> None:
    lab = restart_task.lab
    account = lab.accounts[0]["account_id"]
    image = restart_task.image(name="lab/python:3.11")
    restart_task.run()  # a token in the host cache
    (cached,) = restart_task.cache_files()
    token_file = cached.read_text()
    # Every tag of the image (the lab built it locally too): the pull must fetch its layers.
    for name in (image, lab.images["python"]):
        remove_local(lab.docker_host, name)
    log = registry_log(lab)
    offset = log.stat().st_size
    outcome: dict[str, Any] = {}

    def pull_task() -> None:
        try:
            outcome["result"] = restart_task.run(image, command=["echo", "pulled"])
        except Exception as err:
            outcome["error"] = err

    thread = threading.Thread(target=pull_task)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while "/v2/lab/python/blobs/" not in log.read_text(errors="replace")[offset:]:
            assert time.monotonic() < deadline and thread.is_alive(), outcome
            time.sleep(0.01)
        lab_module.stop_registry(lab.dir, account)  # mid-pull: layers are being fetched
        thread.join(120)
    finally:
        lab_module.start_registry(lab.dir, account)
    assert not thread.is_alive()
    if "result" in outcome:
        pytest.fail("the pull finished before the registry stopped; the race was lost", pytrace=False)
    err = outcome["error"]
    # DockerOperator gives up on a failed pull (Airflow's task retries are the retry); so do we,
    # with the error saying what failed, and no token refetch: it was not a credentials problem.
    assert isinstance(err, (EcrPullError, docker.errors.APIError)), repr(err)
    print(f"registry stopped mid-pull: {type(err).__name__}: {err}")
    assert "rejected" not in str(err)
    assert len(restart_task.calls()) == 1
    assert cached.read_text() == token_file  # the valid token stays cached
    # The registry is back: the next task pulls with the same cached token, no ECR call.
    remove_local(lab.docker_host, image)
    assert restart_task.run(image, command=["echo", "pulled"]) == "pulled"
    assert len(restart_task.calls()) == 1
