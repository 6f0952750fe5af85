"""Run real Airflow (2.11 or 3.x, from its own virtualenv) against the lab, as subprocesses.

One :class:`AirflowHarness` is one ``AIRFLOW_HOME`` (SQLite, no examples, a private copy of the
DAG files from ``tests/e2e/dags``) bound to one virtualenv; tests share it for a whole session
because every Airflow CLI process costs seconds of start-up. It offers:

- :meth:`AirflowHarness.migrate`: ``airflow db migrate`` (once);
- :meth:`AirflowHarness.dags_test`: ``airflow dags test DAG_ID`` with a bounded timeout, giving
  the return code, the output and the text of the run's task log files;
- :meth:`AirflowHarness.scheduler`: a context manager running the real scheduler (plus the
  api-server and dag-processor on Airflow 3) so that tasks run in separate worker processes;
  it triggers DAG runs, waits for them, and stops every process it started by pid.

Everything the DAGs need comes through the environment: the lab directory
(``AIRFLOW_ECR_LAB_DIR``), the Docker daemon (``DOCKER_HOST``), the AWS connection ``aws_lab``
(``AIRFLOW_CONN_AWS_LAB``, pointing boto3 at the ECR emulator, unless the harness keeps its
connections in the metadata database) and the token cache directory (``AIRFLOW__ECR__CACHE_DIR``).

Each harness is configured as deployments are: its own freshly generated Fernet key
(``AIRFLOW__CORE__FERNET_KEY``), so that Airflow encrypts connections with ``MultiFernet`` as it does
in production, never with the ``NullFernet`` it falls back to without a key.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from airflow_ecr_lab import default_dir
from helpers.processes import free_port

REPO = Path(__file__).resolve().parents[2]
DAGS_SOURCE = REPO / "tests" / "e2e" / "dags"
AWS_CONN_ID = "aws_lab"
TERMINAL_STATES = ("success", "failed")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


# -- virtualenvs --------------------------------------------------------------------------------
def find_venv(version: str) -> Path | None:
    """The virtualenv of Airflow ``version`` ("3" or "2"): ``$AIRFLOW_ECR_VENV_AF<N>`` or the repo's
    ``.venvs/af<N>`` (made by scripts/venvs.sh); None if neither has ``airflow``."""
    candidates = [os.environ.get(f"AIRFLOW_ECR_VENV_AF{version}"), str(REPO / ".venvs" / f"af{version}")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "bin" / "airflow").exists():
            return Path(candidate)
    return None


def airflow_version(venv: Path) -> str:
    """The installed ``apache-airflow`` version, read from the venv's metadata (no import)."""
    for dist in sorted(venv.glob("lib/python*/site-packages/apache_airflow-*.dist-info")):
        for line in (dist / "METADATA").read_text().splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    raise RuntimeError(f"apache-airflow is not installed in {venv}")


def new_access_key() -> str:
    """A fake AWS access key id, unique to one run (the emulator accepts any)."""
    return "AKIAE2E" + secrets.token_hex(6).upper()


# -- results ------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """What one Airflow command (or scheduled DAG run) left behind."""

    rc: int | None
    output: str
    logs: dict[str, str] = field(default_factory=dict)  # log file (relative to logs/) -> text
    duration: float = 0.0
    state: str | None = None  # the DAG run's state, when known
    access_key: str = ""  # the AWS access key id the run's connection used

    def log_text(self, task_id: str | None = None) -> str:
        """Every task log's text (of ``task_id`` only, if given)."""
        return "\n".join(
            text for path, text in sorted(self.logs.items()) if task_id is None or f"task_id={task_id}/" in path
        )

    def all_text(self) -> str:
        return self.output + "\n" + self.log_text()

    def describe(self, tail: int = 12000) -> str:
        """For assertion messages: rc, state and the end of the output and logs."""
        text = self.all_text()
        return f"rc={self.rc} state={self.state} ({self.duration:.1f} s)\n...{text[-tail:]}"


# -- process handling ---------------------------------------------------------------------------
def _proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime


def _descendants(root: int) -> dict[int, str]:
    """Every live descendant of ``root``: pid -> start time (to recognise it later)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            start = _proc_start_time(child)
            if start is not None and child not in found:
                found[child] = start
                todo.append(child)
    return found


@dataclass
class Started:
    """A process this harness started, in its own session (process group = pid)."""

    name: str
    popen: subprocess.Popen[Any]
    log: Path
    _known: dict[int, str] = field(default_factory=dict)  # descendants seen at terminate()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def terminate(self) -> None:
        """SIGTERM the process group, and descendants that left it (remembered for :meth:`kill`)."""
        if self.popen.poll() is not None:
            return
        self._known = _descendants(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        for pid, start in self._known.items():
            if _proc_start_time(pid) == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def kill(self, grace: float) -> None:
        """After ``grace`` s, SIGKILL whatever is left of the group and the known descendants."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=max(grace, 0.0))
        known = dict(self._known)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.popen.poll() is None:
            known = {**known, **_descendants(self.pid)}
        for pid, start in known.items():
            if _proc_start_time(pid) == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` s."""
        self.terminate()
        self.kill(grace)

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# -- the harness --------------------------------------------------------------------------------
class AirflowHarness:
    """
    One AIRFLOW_HOME for one Airflow virtualenv, driven through the ``airflow`` CLI.

    :param venv: the virtualenv (``bin/airflow``, with airflow-ecr installed).
    :param home: the (empty or missing) AIRFLOW_HOME directory.
    :param lab: the lab description (``lab.json``).
    :param lab_directory: where ``lab.json`` lives (passed to the DAGs as ``AIRFLOW_ECR_LAB_DIR``).
    :param dag_files: file names in ``tests/e2e/dags`` to copy to the DAGs folder (default: all; ``[]``: none).
    :param connections_in_db: keep ``aws_lab`` in the metadata database (written by Airflow's own
        ``airflow connections add``, see :meth:`store_aws_connection`), as most deployments keep
        their connections, instead of in ``AIRFLOW_CONN_AWS_LAB``.
    """

    def __init__(
        self,
        venv: Path,
        home: Path,
        lab: Mapping[str, Any],
        lab_directory: Path,
        dag_files: list[str] | None = None,
        connections_in_db: bool = False,
    ) -> None:
        self.venv = venv
        self.home = home
        self.lab = lab
        self.lab_directory = lab_directory
        self.version = airflow_version(venv)
        self.major = int(self.version.split(".")[0])
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags_folder = home / "dags"
        self.dags_folder.mkdir(exist_ok=True)
        for name in dag_files if dag_files is not None else sorted(p.name for p in DAGS_SOURCE.glob("*.py")):
            shutil.copy2(DAGS_SOURCE / name, self.dags_folder / name)
        self.cache_dir = Path(tempfile.mkdtemp(prefix="ecr-cache-", dir=home))  # 0700
        self.proc_logs = home / "proc-logs"
        self.proc_logs.mkdir(exist_ok=True)
        self.jwt_secret = secrets.token_urlsafe(32)
        # As Airflow generates the key into a new airflow.cfg: one per deployment, never shared.
        self.fernet_key = Fernet.generate_key().decode()
        self.connections_in_db = connections_in_db
        self.migrated = False

    # -- environment --------------------------------------------------------------------------
    def aws_connection(self, access_key: str = "testing") -> str:
        """The ``aws_lab`` connection: any access key works with the emulator, which records it in
        its call list; a unique key per run tells a run's calls apart from anyone else's."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": access_key,
                "password": "testing",
                "extra": {"region_name": "eu-west-1", "endpoint_url": self.lab["emulator_url"]},
            }
        )

    def env(
        self,
        cache_dir: Path | None = None,
        extra: Mapping[str, str] | None = None,
        access_key: str = "testing",
    ) -> dict[str, str]:
        """The environment of every Airflow process: this home, the lab, the connection."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW_", "AWS_", "PYTEST_", "_AIRFLOW")) and k not in ("VIRTUAL_ENV",)
        }
        env.update(
            {
                # The venv's bin first: Airflow 2's executors start `airflow tasks run` by PATH.
                "PATH": f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
                "VIRTUAL_ENV": str(self.venv),
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__ECR__CACHE_DIR": str(cache_dir or self.cache_dir),
                "AIRFLOW_ECR_LAB_DIR": str(self.lab_directory),
                "DOCKER_HOST": self.lab["docker_host"],
                "AWS_EC2_METADATA_DISABLED": "true",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                # Manifest requests (pins, swarm services) reach the lab's registries as a worker
                # behind a proxy does; the daemon pulls inside the lab's namespace.
                "HTTPS_PROXY": self.lab["https_proxy"],
                "https_proxy": self.lab["https_proxy"],
                "REQUESTS_CA_BUNDLE": self.lab["ca_cert"],
            }
        )
        if not self.connections_in_db:
            env["AIRFLOW_CONN_AWS_LAB"] = self.aws_connection(access_key)
        if self.major >= 3:
            env["AIRFLOW__API_AUTH__JWT_SECRET"] = self.jwt_secret
            env["AIRFLOW__API__SECRET_KEY"] = self.jwt_secret
        env.update(extra or {})
        return env

    # -- one-shot commands --------------------------------------------------------------------
    def run_cli(
        self,
        *args: str,
        timeout: float = 120,
        env: Mapping[str, str] | None = None,
        program: str = "airflow",
        stdin_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``airflow ARGS`` (or another ``program`` of the venv, with ``stdin_text`` as its input)
        to completion (killed, with its group, after ``timeout`` s); its stdout and stderr together."""
        proc = subprocess.Popen(
            [str(self.venv / "bin" / program), *args],
            env=dict(env or self.env()),
            cwd=self.home,
            stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(input=stdin_text, timeout=timeout)
        except subprocess.TimeoutExpired:
            Started("cli", proc, Path("/dev/null")).stop(grace=5)
            output, _ = proc.communicate()
            return subprocess.CompletedProcess(proc.args, -9, f"TIMEOUT after {timeout} s\n{output}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, output)

    def run_python(self, code: str, timeout: float = 120) -> str:
        """The output of ``python -c CODE`` in this harness's venv and environment (fails on rc != 0)."""
        done = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            env=self.env(),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"python -c {code!r} failed in {self.venv}:\n{done.stderr[-3000:]}")
        return done.stdout

    def migrate(self) -> None:
        """``airflow db migrate`` (once per harness)."""
        if self.migrated:
            return
        result = self.run_cli("db", "migrate", timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed ({self.version}):\n{result.stdout[-5000:]}")
        self.migrated = True

    def store_aws_connection(self, access_key: str) -> subprocess.CompletedProcess[str]:
        """
        Write ``aws_lab`` (with ``access_key``) into the metadata database through Airflow's own
        ``airflow connections add``: the password is encrypted with this deployment's Fernet key,
        so any breakage of Airflow's encryption shows here, in Airflow's words. Once per harness
        (Airflow refuses an existing id); the caller checks the result (its output is Airflow's).
        """
        self.migrate()
        return self.run_cli("connections", "add", AWS_CONN_ID, "--conn-json", self.aws_connection(access_key))

    def dags_test(
        self,
        dag_id: str,
        timeout: float = 240,
        cache_dir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        access_key: str | None = None,
    ) -> RunResult:
        """
        ``airflow dags test DAG_ID`` in one process; the output and the run's task logs.

        Airflow (2.11 and 3.x) writes no task log files for ``dags test``: the task log lines are
        in the output. The connection's access key is unique to this run unless given.
        """
        self.migrate()
        access_key = access_key or new_access_key()
        started_at = time.time()
        env = self.env(cache_dir=cache_dir, extra=extra_env, access_key=access_key)
        result = self.run_cli("dags", "test", dag_id, timeout=timeout, env=env)
        return RunResult(
            rc=result.returncode,
            # Some Airflow releases (3.1.0) colour their console logs even into a pipe.
            output=ANSI_ESCAPE.sub("", result.stdout),
            logs=self.task_logs(dag_id, since=started_at - 1),
            duration=time.time() - started_at,
            access_key=access_key,
        )

    # -- what runs left -----------------------------------------------------------------------
    def task_logs(self, dag_id: str, since: float = 0.0, run_id: str | None = None) -> dict[str, str]:
        """Task log files of ``dag_id`` written since ``since`` (or of run ``run_id``)."""
        root = self.home / "logs"
        logs: dict[str, str] = {}
        if not root.exists():
            return logs
        for path in root.rglob("*"):
            rel = str(path.relative_to(root))
            if not path.is_file() or f"dag_id={dag_id}/" not in rel:
                continue
            if run_id is not None and f"run_id={run_id}/" not in rel:
                continue
            if path.stat().st_mtime < since:
                continue
            logs[rel] = path.read_text(errors="replace")
        return logs

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.home / 'airflow.db'}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        for attempt in range(20):
            try:
                with contextlib.closing(self.db()) as conn:
                    return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as err:
                if ("locked" not in str(err) and "no such table" not in str(err)) or attempt == 19:
                    raise
                time.sleep(0.2)
        return []

    def xcom(self, dag_id: str, task_id: str, key: str = "return_value") -> Any:
        """The latest XCom value ``key`` of a task, decoded from the metadata database."""
        rows = self.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = ? ORDER BY timestamp DESC",
            dag_id,
            task_id,
            key,
        )
        if not rows:
            return None
        value = rows[0]["value"]
        if isinstance(value, bytes):
            value = value.decode()
        return json.loads(value) if isinstance(value, str) else value

    def dag_run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return rows[0]["state"] if rows else None

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        rows = self.query("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return {row["task_id"]: row["state"] for row in rows}

    # -- the scheduler ------------------------------------------------------------------------
    @contextlib.contextmanager
    def scheduler(
        self,
        cache_dir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        access_key: str | None = None,
    ) -> Iterator[SchedulerSession]:
        """
        The real scheduler, tasks in separate processes; every process stopped by pid on exit.

        Airflow 3: ``api-server`` (loopback, free port), ``dag-processor`` and ``scheduler`` with
        the LocalExecutor (SQLite is accepted there). Airflow 2: ``scheduler`` alone (it parses
        DAGs itself) with the SequentialExecutor, because Airflow 2 refuses the LocalExecutor on
        SQLite; it still runs every task as its own ``airflow tasks run`` process.
        """
        self.migrate()
        extra: dict[str, str] = {
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        }
        port = None
        if self.major >= 3:
            port = free_port()
            extra.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__API__HOST": "127.0.0.1",
                    "AIRFLOW__API__PORT": str(port),
                    "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                    "AIRFLOW__API__WORKERS": "1",
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                }
            )
        else:
            extra.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
                    "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
                    "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
                    "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "False",
                }
            )
        extra.update(extra_env or {})
        access_key = access_key or new_access_key()
        env = self.env(cache_dir=cache_dir, extra=extra, access_key=access_key)
        session = SchedulerSession(self, env, port, access_key)
        try:
            if self.major >= 3:
                session.start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(port))
                session.start("dag-processor", "dag-processor")
            session.start("scheduler", "scheduler")
            yield session
        finally:
            session.stop()


class SchedulerSession:
    """The processes of one :meth:`AirflowHarness.scheduler` block, and what to do with them."""

    def __init__(self, harness: AirflowHarness, env: dict[str, str], port: int | None, access_key: str) -> None:
        self.harness = harness
        self.env = env
        self.port = port
        self.access_key = access_key
        self.processes: list[Started] = []
        self._token: str | None = None

    def start(self, name: str, *args: str) -> Started:
        log = self.harness.proc_logs / f"{name}-{time.strftime('%H%M%S')}.log"
        handle = open(log, "wb")  # noqa: SIM115 - the child owns it
        try:
            popen = subprocess.Popen(
                [str(self.harness.venv / "bin" / "airflow"), *args],
                env=self.env,
                cwd=self.harness.home,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            handle.close()
        started = Started(name, popen, log)
        self.processes.append(started)
        return started

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every process (group) at once, then SIGKILL what is left after ``grace`` s."""
        deadline = time.monotonic() + grace
        for process in reversed(self.processes):
            process.terminate()
        for process in reversed(self.processes):
            process.kill(deadline - time.monotonic())

    def check_alive(self) -> None:
        for process in self.processes:
            if process.popen.poll() is not None:
                raise RuntimeError(f"airflow {process.name} exited with {process.popen.returncode}:\n{process.tail()}")

    def diagnostics(self) -> str:
        return "\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.tail(3000)}" for p in self.processes)

    # -- REST (Airflow 3) ---------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, auth: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.api_token()}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
            method=method,
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def api_token(self) -> str:
        if self._token is None:
            passwords = self.harness.home / "simple_auth_manager_passwords.json.generated"
            password = json.loads(passwords.read_text())["admin"]
            status, body = self._request("POST", "/auth/token", {"username": "admin", "password": password}, auth=False)
            if status not in (200, 201):
                raise RuntimeError(f"POST /auth/token: {status} {body}")
            self._token = body["access_token"]
        return self._token

    def wait_api(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError):
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=5):
                    return
            time.sleep(0.5)
        raise TimeoutError(f"the api-server did not answer within {timeout} s:\n{self.diagnostics()}")

    # -- runs ---------------------------------------------------------------------------------
    def wait_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Until the DAG is parsed into the database (and unpaused)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            rows = self.harness.query("SELECT is_paused FROM dag WHERE dag_id = ?", dag_id)
            if rows and not rows[0]["is_paused"]:
                if self.harness.major < 3:
                    return
                if self.harness.query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", dag_id):
                    return
            time.sleep(0.5)
        raise TimeoutError(f"DAG {dag_id} was not parsed within {timeout} s:\n{self.diagnostics()}")

    def trigger(self, dag_id: str, run_id: str | None = None) -> str:
        """Create a manual run of ``dag_id``; returns its run id."""
        run_id = run_id or f"e2e_{int(time.time() * 1000)}"
        self.wait_dag(dag_id)
        if self.harness.major >= 3:
            self.wait_api()
            # The metadata database is SQLite, one writer at a time: a scheduler's write can make the
            # API server's insert fail ("database is locked"), which Airflow answers with a 500
            # "Database error" (CI run of stop 30, once in two runs). A user retries; so do we. The
            # insert was rolled back, so a retry that finds the run (409) finds the one it made.
            for attempt in range(5):
                status, body = self._request(
                    "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None}
                )
                if status in (200, 201) or (attempt and status == 409):
                    break
                if status != 500 or "Database error" not in str(body) or attempt == 4:
                    raise RuntimeError(f"triggering {dag_id}: {status} {body}")
                time.sleep(1 + attempt)
        else:
            result = self.harness.run_cli("dags", "trigger", "-r", run_id, dag_id, env=self.env)
            if result.returncode != 0:
                raise RuntimeError(f"airflow dags trigger failed:\n{result.stdout[-4000:]}")
        return run_id

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 240) -> RunResult:
        """Until the run ends (or ``timeout``); its state, task logs and process output."""
        started = time.monotonic()
        state = None
        while time.monotonic() - started < timeout:
            self.check_alive()
            state = self.harness.dag_run_state(dag_id, run_id)
            if state in TERMINAL_STATES:
                break
            time.sleep(0.5)
        return RunResult(
            rc=None,
            output=self.diagnostics(),
            logs=self.harness.task_logs(dag_id, run_id=run_id),
            duration=time.monotonic() - started,
            state=state,
            access_key=self.access_key,
        )


# -- the REST API (Airflow 3) -------------------------------------------------------------------
_API_USERS = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin", "AIRFLOW__API__WORKERS": "1"}


@contextlib.contextmanager
def api_server(airflow: AirflowHarness) -> Iterator[tuple[int | None, dict[str, str]]]:
    """
    Airflow 3: a real ``airflow api-server -H 127.0.0.1`` on a free port, and the environment
    giving tasks the ``airflow_api`` connection (http, URL, simple auth manager user and password).
    Airflow 2: nothing (the ORM is written directly). Stopped by pid on exit.
    """
    if airflow.major < 3:
        yield None, {}
        return
    port = free_port()
    session = SchedulerSession(airflow, airflow.env(extra=_API_USERS), port, "")
    try:
        session.start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(port))
        session.wait_api()
        password = json.loads((airflow.home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        yield port, {**_API_USERS, "AIRFLOW_CONN_AIRFLOW_API": api_connection(port, password)}
    finally:
        session.stop()


def api_connection(port: int, password: str) -> str:
    return json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}", "login": "admin", "password": password})


# -- shared per test session --------------------------------------------------------------------
_SHARED: dict[str, AirflowHarness] = {}


def shared_harness(version: str, lab: Mapping[str, Any], base: Path) -> AirflowHarness | None:
    """The session's harness for Airflow ``version`` ("3" or "2"), created (and migrated) on first
    use so that every test module reuses one AIRFLOW_HOME; None when that venv is missing."""
    if version not in _SHARED:
        venv = find_venv(version)
        if venv is None:
            return None
        harness = AirflowHarness(
            venv,
            Path(tempfile.mkdtemp(prefix=f"airflow{version}-", dir=base)),
            lab,
            Path(lab.get("dir") or default_dir()),
        )
        harness.migrate()
        _SHARED[version] = harness
    return _SHARED[version]
