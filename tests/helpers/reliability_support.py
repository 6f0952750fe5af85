"""
What the reliability tests share: an AWS connection to the lab's ECR emulator with a unique access
key (so a test counts its own calls only), a private host cache, and one task run as a new task
process would run it (empty memory cache, real EcrDockerOperator, real Docker engine).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from airflow_ecr import process_state
from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr_lab.leaks import Leak, ProcessSampler, ecr_secret_forms, scan_files, scan_sqlite, scan_texts
from airflow_ecr_lab.paths import LabPaths
from airflow_ecr_lab.spec import LAB_WORKERS
from airflow_ecr_lab.swarm import node_dir
from helpers.airflow_harness import AirflowHarness, RunResult, find_venv, new_access_key

CONN = "aws_rel"


def aws_connection(emulator_url: str, access_key: str, **extra: Any) -> str:
    """An Airflow AWS connection (JSON) to the emulator; ``extra`` adds to the connection's extra."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": access_key,
            "password": "testing",
            "extra": {"region_name": "eu-west-1", "endpoint_url": emulator_url, **extra},
        }
    )


class LabTask:
    """
    Runs EcrDockerOperator tasks against a lab with its own access key and host cache directory.

    :param lab: the lab (``tests/conftest.py``'s ``Lab``).
    :param emulator: the emulator's admin client.
    :param monkeypatch: to set the connection and cache settings for the test.
    :param cache_dir: the host cache directory.
    """

    def __init__(self, lab: Any, emulator: Any, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
        self.lab = lab
        self.emulator = emulator
        self.monkeypatch = monkeypatch
        self.cache_dir = cache_dir
        self.access_key = new_access_key()
        self.connect()
        monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(cache_dir))

    def connect(self, **extra: Any) -> None:
        """(Re)define the connection, with ``extra`` added to its extra."""
        self.monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN.upper()}", aws_connection(self.lab.emulator_url, self.access_key, **extra)
        )

    def calls(self) -> list[dict[str, Any]]:
        """This test's ``GetAuthorizationToken`` calls."""
        return self.emulator.calls(access_key=self.access_key)

    def image(self, account_index: int = 0, name: str = "lab/busybox:1") -> str:
        return f"{self.lab.accounts[account_index]['host']}/{name}"

    def run(self, image: str | None = None, **kwargs: Any) -> Any:
        """One task, as a new task process runs it: empty memory cache, forced pull by default."""
        process_state.reset()
        arguments: dict[str, Any] = {
            "aws_conn_id": CONN,
            "docker_url": self.lab.docker_host,
            "network_mode": "none",
            "mount_tmp_dir": False,
            "auto_remove": "success",
            "command": ["echo", "ran"],
            "force_pull": True,
            **kwargs,
        }
        op = EcrDockerOperator(task_id="reliability", image=image or self.image(), **arguments)
        return op.execute({})

    def cache_files(self) -> list[Path]:
        return sorted(self.cache_dir.glob("*.json")) if self.cache_dir.is_dir() else []


@pytest.fixture
def lab_task(lab: Any, emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LabTask:
    """A :class:`LabTask` with a fresh cache directory (and, as every test, an empty memory cache)."""
    return LabTask(lab, emulator, monkeypatch, tmp_path / "ecr-cache")


def remove_local(docker_host: str, image: str) -> None:
    client = docker.APIClient(base_url=docker_host)
    with contextlib.suppress(docker.errors.NotFound):
        client.remove_image(image, force=True)


class Recorder(logging.Handler):
    """Collects the records of loggers (Airflow's task logging bypasses pytest's caplog)."""

    def __init__(self, *names: str) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.loggers = [logging.getLogger(name) for name in names or ("airflow_ecr",)]

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def text(self) -> str:
        return "\n".join(self.messages)

    def __enter__(self) -> Recorder:
        for logger in self.loggers:
            logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self.loggers:
            logger.removeHandler(self)


def assert_clean_error(err: BaseException, *needles: str) -> None:
    """One actionable line: every needle in it, no chained traceback behind it, no traceback text."""
    text = str(err)
    for needle in needles:
        assert needle in text, (needle, text)
    assert "\n" not in text and "Traceback" not in text, text
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__), repr(err.__context__)


def environment_without_aws() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


class TcpForwarder:
    """
    A loopback TCP port forwarding to ``target`` until :meth:`close`: an ECR endpoint that can be
    made unreachable without changing the connection (whose endpoint is part of the cache key).

    :param target: ``host:port`` to forward to.
    """

    def __init__(self, target: str) -> None:
        import socket
        import threading

        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(2)

    def close(self) -> None:
        """Stop listening and cut every connection: the endpoint is now unreachable."""
        # shutdown() wakes the blocked accept(); close() alone would leave the port accepting.
        with contextlib.suppress(OSError):
            self.server.shutdown(2)
        self.server.close()
        self._thread.join(timeout=5)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


# -- real Airflow runs of the suite's DAGs, sampled and scanned for tokens --------------------------
DAGS = Path(__file__).resolve().parents[1] / "reliability" / "dags"
_HARNESSES: dict[str, AirflowHarness] = {}


def reliability_harness(lab: Any, base: Path) -> Any:  # an AirflowHarness
    """
    An Airflow 3 harness of its own (fresh AIRFLOW_HOME and metadata database, only this suite's
    DAGs), shared by the suite's modules: the leak scans look at everything in it, so nothing
    another test wrote there may confuse them.
    """
    if "3" not in _HARNESSES:
        venv = find_venv("3")
        if venv is None:
            pytest.fail("no Airflow 3 virtualenv (scripts/venvs.sh 3)", pytrace=False)
        home = Path(tempfile.mkdtemp(prefix="airflow-reliability-", dir=base))
        harness = AirflowHarness(venv, home, lab.raw, lab.dir, dag_files=[])
        for dag in DAGS.glob("*.py"):
            shutil.copy2(dag, harness.dags_folder / dag.name)
        harness.migrate()
        _HARNESSES["3"] = harness
    return _HARNESSES["3"]


# Airflow's own leak, not ours: at DEBUG, its supervisor logs every MaskSecret message it sends or
# receives with the value in it, past the masker (3.3's in-process supervisor of ``dags test``,
# supervisor.py "Sending request"; the task supervisor of 3.0-3.2, "Received message from task
# runner"). Such lines are kept apart, never dropped: a test of their own reports them.
AIRFLOW_MASK_SECRET_LOG = "MaskSecret(value="


def split_airflow_leaks(texts: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """
    ``texts`` without Airflow's own MaskSecret debug lines, and those lines apart.

    :param texts: name -> text (output, task logs).
    :return: (texts without those lines, name -> those lines).
    """
    ours: dict[str, str] = {}
    airflows: dict[str, str] = {}
    for where, text in texts.items():
        lines = text.splitlines(keepends=True)
        ours[where] = "".join(line for line in lines if AIRFLOW_MASK_SECRET_LOG not in line)
        known = "".join(line for line in lines if AIRFLOW_MASK_SECRET_LOG in line)
        if known:
            airflows[f"{where}, Airflow's own MaskSecret debug line"] = known
    return ours, airflows


@dataclass
class ScannedRun:
    """
    A DAG run and where the registry passwords issued meanwhile were found.

    :param leaks: where any form of a password was found, but for Airflow's own leak below.
    :param airflow_leaks: Airflow's own leak: its MaskSecret debug lines (see ``AIRFLOW_MASK_SECRET_LOG``).
    """

    result: RunResult
    secrets: set[str]
    leaks: list[Leak]
    samples: int
    passwords: set[str]
    airflow_leaks: list[Leak] = field(default_factory=list)

    def leaks_outside(self, allowed: Callable[[Leak], bool]) -> list[str]:
        return [str(leak) for leak in self.leaks if not allowed(leak)]


def run_scanned(
    harness: AirflowHarness,
    emulator: Any,
    lab: Any,
    dag_id: str,
    *,
    cache_dir: Path,
    extra_env: dict[str, str] | None = None,
    access_key: str | None = None,
    debug: bool = False,
) -> ScannedRun:
    """
    ``airflow dags test DAG_ID`` while a sampler reads every process's cmdline and environment;
    then scan the output and task logs, every table of the metadata database (XCom, rendered
    template fields, ...), every file of AIRFLOW_HOME and of the cache directory, and the lab's own
    files (not the Docker engine's data root nor the registries' blob storage), for every form
    (:func:`ecr_secret_forms`) of every registry password the emulator handed out while the DAG ran.

    :param debug: run at ``[logging] logging_level = DEBUG``; ``dags test`` runs the task, its
        in-process supervisor and their loggers (botocore, docker-py, urllib3) in the one process
        whose output (stdout and stderr) is scanned.
    """
    accounts = [a["account_id"] for a in lab.accounts]
    env = {**(extra_env or {}), **({"AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"} if debug else {})}
    with ProcessSampler(secret_source=lambda: emulator.passwords(accounts)) as sampler:
        result = harness.dags_test(dag_id, cache_dir=cache_dir, extra_env=env, access_key=access_key)
    secrets = ecr_secret_forms(sampler.secrets, hosts=[a["host"] for a in lab.accounts])
    lab_dir = Path(lab.dir)
    # The engines' own state, root-only on a real host: a swarm keeps each service's registry login
    # (--with-registry-auth) in its raft store and hands it to the node that runs the task, by design.
    engines = [lab_dir / "docker", *(node_dir(LabPaths(lab_dir), node) / "data" for node in LAB_WORKERS)]
    skip = [*engines, *lab_dir.glob("registries/*/storage")]
    texts, airflow_texts = split_airflow_leaks({"dags test output and task logs": result.output, **result.logs})
    leaks = [
        *sampler.leaks(secrets),
        *scan_texts(texts, secrets),
        *scan_sqlite(harness.home / "airflow.db", secrets),
        *scan_files([harness.home, cache_dir, lab_dir], secrets, skip=skip),
    ]
    assert not sampler.errors, sampler.errors
    return ScannedRun(result, secrets, leaks, sampler.samples, set(sampler.secrets), scan_texts(airflow_texts, secrets))


def is_private_cache_file(cache_dir: Path) -> Callable[[Leak], bool]:
    """The one place a token may be: a 0600 ``*.json`` entry directly in the cache directory."""

    def allowed(leak: Leak) -> bool:
        prefix = f"file {cache_dir}/"
        return (
            leak.where.startswith(prefix)
            and leak.where.endswith(".json (mode 0600)")
            and "/" not in leak.where[len(prefix) :].split(" ")[0]
        )

    return allowed
