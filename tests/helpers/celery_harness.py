"""Real Airflow 3 with the CeleryExecutor, on one machine standing for several worker hosts.

:func:`celery_cluster` starts, on loopback only and each stopped by its pid when the block ends:
a private PostgreSQL cluster (the metadata database and Celery's result backend) and a private
``redis-server`` (the broker), both from Debian's packages (:mod:`helpers.services`); then
``airflow db migrate``, the api-server (the task processes' Execution API), the dag-processor,
the scheduler with the CeleryExecutor, and one ``airflow celery worker`` per emulated host.

What makes two workers on one machine two *hosts* for airflow-ecr is what differs between real
hosts: each worker has its own host token cache (``AIRFLOW__ECR__CACHE_DIR``), its own AWS access
key in the ``aws_lab`` connection (so the ECR emulator's call records say which host called),
and its own hostname (``[core] hostname_callable``), which Airflow records on each task instance.
Both workers share the lab's one Docker engine, as containers on one machine would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.airflow_harness import AirflowHarness, SchedulerSession, Started, find_venv, new_access_key
from helpers.services import postgres_cluster, redis_server

# Task processes import this (``[core] hostname_callable``): the host name a worker stands for.
HOSTNAME_MODULE = '''"""The emulated host name of this Celery worker (set by the test per worker)."""
import os


def hostname():
    return os.environ["ECR_LOAD_HOSTNAME"]
'''


class CeleryHarness(AirflowHarness):
    """
    An :class:`AirflowHarness` whose metadata database is PostgreSQL and whose executor is Celery.

    :param database_url: SQLAlchemy URL of the metadata database (PostgreSQL).
    :param broker_url: Celery's broker (``redis://127.0.0.1:<port>/0``).
    :param dag_sources: DAG files to copy into the DAGs folder (instead of ``tests/e2e/dags``).
    :param kwargs: the other :class:`AirflowHarness` arguments.
    """

    def __init__(self, *, database_url: str, broker_url: str, dag_sources: list[Path], **kwargs: Any) -> None:
        super().__init__(dag_files=[], **kwargs)
        for source in dag_sources:
            shutil.copy2(source, self.dags_folder / source.name)
        self.database_url = database_url
        self.broker_url = broker_url
        self.pylib = self.home / "pylib"
        self.pylib.mkdir(exist_ok=True)
        (self.pylib / "ecr_load_hostname.py").write_text(HOSTNAME_MODULE)

    def env(
        self,
        cache_dir: Path | None = None,
        extra: Mapping[str, str] | None = None,
        access_key: str = "testing",
    ) -> dict[str, str]:
        env = super().env(cache_dir=cache_dir, access_key=access_key)
        env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                # No async engine: it needs asyncpg (apache-airflow[postgres]), and nothing used here
                # (Execution API without multi-team, REST trigger, scheduler, Celery) takes it.
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": "",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                # Celery's results go to the metadata database ("db+" + sql_alchemy_conn), the default.
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.database_url,
            }
        )
        env.update(extra or {})
        return env

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        """``sql`` (with ``?`` placeholders, as for SQLite) on the PostgreSQL metadata database."""
        import psycopg2
        import psycopg2.extras

        url = self.database_url.replace("postgresql+psycopg2://", "postgresql://")
        with (
            contextlib.closing(psycopg2.connect(url, connect_timeout=10)) as conn,
            conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor,
        ):
            try:
                cursor.execute(sql.replace("?", "%s"), params)
            except psycopg2.errors.UndefinedTable:
                return []  # not migrated yet
            return [dict(row) for row in cursor.fetchall()]


@dataclass
class Worker:
    """One ``airflow celery worker`` standing for one host."""

    name: str
    cache_dir: Path
    access_key: str
    process: Started | None = None


@dataclass
class CeleryCluster:
    """The running processes of :func:`celery_cluster`."""

    harness: CeleryHarness
    session: SchedulerSession  # api-server, dag-processor, scheduler
    workers: list[Worker]
    worker_sessions: list[SchedulerSession] = field(default_factory=list)

    def check_alive(self) -> None:
        self.session.check_alive()
        for session in self.worker_sessions:
            session.check_alive()

    def diagnostics(self) -> str:
        return "\n".join(s.diagnostics() for s in [self.session, *self.worker_sessions])

    def wait_workers(self, timeout: float = 120) -> None:
        """Until every worker logged that it is ready to take tasks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if all(w.process and " ready." in w.process.tail(200_000) for w in self.workers):
                return
            time.sleep(0.5)
        raise TimeoutError(f"the Celery workers were not ready within {timeout} s:\n{self.diagnostics()}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.harness.query(
            "SELECT task_id, map_index, state, hostname, start_date, end_date FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? ORDER BY map_index",
            dag_id,
            run_id,
        )

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str | None:
        """Until the run ends (or ``timeout`` s); the run's state. Fails early if a process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            state = self.harness.dag_run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(1)
        return self.harness.dag_run_state(dag_id, run_id)


def check_celery_provider(venv: Path) -> None:
    """Fail at once, saying why, when the venv's Celery provider cannot run a worker (what it imports)."""
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import airflow.providers.celery.executors.celery_executor_utils"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(
            f"the Celery executor cannot be imported in {venv} ({last}): apache-airflow-providers-celery and "
            "celery must be compatible (3.26.0 needs celery<5.7, whose celery.backends.database has 'retry')"
        )


@contextlib.contextmanager
def celery_cluster(
    lab: Mapping[str, Any],
    base: Path,
    dag_sources: list[Path],
    hosts: tuple[str, ...] = ("host-a", "host-b"),
    concurrency: int = 4,
    extra_env: Mapping[str, str] | None = None,
    host_env: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[CeleryCluster]:
    """
    PostgreSQL, Redis, and Airflow 3 with the CeleryExecutor: one worker per name in ``hosts``.

    :param lab: the lab's ``lab.json``.
    :param base: a directory for AIRFLOW_HOME, caches and logs.
    :param dag_sources: the DAG files to deploy.
    :param hosts: the emulated worker hosts.
    :param concurrency: task slots per worker (``--concurrency``).
    :param extra_env: more settings for every Airflow process.
    :param host_env: more settings for the worker of a host (host name -> environment).
    """
    venv = find_venv("3")
    if venv is None:
        raise RuntimeError("no Airflow 3 virtualenv (scripts/venvs.sh 3)")
    check_celery_provider(venv)
    # Connections: scheduler, api-server and dag-processor pools, plus each worker's pool processes.
    with postgres_cluster(max_connections=200) as database_url, redis_server() as broker_url:
        harness = CeleryHarness(
            venv=venv,
            home=Path(tempfile.mkdtemp(prefix="airflow3-celery-", dir=base)),
            lab=lab,
            lab_directory=Path(lab["dir"]),
            database_url=database_url,
            broker_url=broker_url,
            dag_sources=dag_sources,
        )
        settings = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(4 * concurrency * len(hosts)),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(2 * concurrency * len(hosts)),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            # A busy 2-core machine: sending to the broker may take longer than the default 1 s.
            "AIRFLOW__CELERY__OPERATION_TIMEOUT": "30",
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "1200",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **(extra_env or {}),
        }
        with harness.scheduler(extra_env=settings) as session:
            workers = [
                Worker(name, Path(tempfile.mkdtemp(prefix=f"ecr-cache-{name}-", dir=harness.home)), new_access_key())
                for name in hosts
            ]
            cluster = CeleryCluster(harness, session, workers)
            try:
                for worker in workers:
                    env = {
                        **session.env,
                        "AIRFLOW__ECR__CACHE_DIR": str(worker.cache_dir),
                        "AIRFLOW_CONN_AWS_LAB": harness.aws_connection(worker.access_key),
                        "ECR_LOAD_HOSTNAME": worker.name,
                        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "ecr_load_hostname.hostname",
                        "PYTHONPATH": os.pathsep.join(
                            filter(None, [str(harness.pylib), session.env.get("PYTHONPATH")])
                        ),
                        **(host_env or {}).get(worker.name, {}),
                    }
                    worker_session = SchedulerSession(harness, env, session.port, worker.access_key)
                    cluster.worker_sessions.append(worker_session)
                    pid_file = harness.home / f"worker-{worker.name}.pid"
                    worker.process = worker_session.start(
                        f"worker-{worker.name}",
                        *("celery", "worker", "--concurrency", str(concurrency), "--celery-hostname", worker.name),
                        *("--skip-serve-logs", "--without-gossip", "--without-mingle", "--pid", str(pid_file)),
                    )
                yield cluster
            finally:
                # Workers first (they may still be finishing tasks), then the scheduler's block.
                for worker_session in cluster.worker_sessions:
                    worker_session.stop()


def to_json(value: Any) -> Any:
    """``value`` with datetimes as ISO strings (for the figures file)."""
    return json.loads(json.dumps(value, default=str))
