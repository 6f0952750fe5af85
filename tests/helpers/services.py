"""Private service processes for the tests, from Debian's packages: PostgreSQL and Redis.

Each one listens on 127.0.0.1 on a free port, keeps its data in a temporary directory and is
stopped by its pid when the ``with`` block ends; nothing global (no system cluster, no
``/etc`` file, no systemd unit) is used or changed. ``scripts/setup-debian.sh`` installs the
packages (``postgresql``, ``redis-server``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_ecr_lab.processes import stop_process
from helpers.processes import free_port, wait_for_port


@contextlib.contextmanager
def postgres_cluster(max_connections: int = 100) -> Iterator[str]:
    """
    A private PostgreSQL cluster (``initdb`` in a temporary directory, run as ``postgres``, trust
    authentication on 127.0.0.1 only, no fsync); yields its SQLAlchemy URL (database ``postgres``).

    :param max_connections: the server's ``max_connections``.
    """
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins or os.geteuid() != 0:
        pytest.fail("needs root and PostgreSQL (scripts/setup-debian.sh installs 'postgresql')", pytrace=False)
    pg_bin = Path(bins[-1])
    user = pwd.getpwnam("postgres")
    base = Path(tempfile.mkdtemp(prefix="airflow-ecr-pg-", dir="/tmp"))
    os.chown(base, user.pw_uid, user.pw_gid)
    data, port = base / "data", free_port()

    def as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, timeout=60, check=False
        )

    try:
        init = as_postgres(str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        assert init.returncode == 0, init.stdout + init.stderr
        options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections={max_connections}"
        start = as_postgres(
            str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-o", options, "start"
        )
        assert start.returncode == 0, start.stdout + start.stderr + (base / "log").read_text(errors="replace")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        pid_file = data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            as_postgres(str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                os.kill(pid, signal.SIGKILL)  # pg_ctl did not stop it: by its pid
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """
    A private ``redis-server`` on 127.0.0.1 (no persistence: ``--save ''``, no append-only file);
    yields its URL (``redis://127.0.0.1:<port>/0``).
    """
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is not installed (scripts/setup-debian.sh installs 'redis-server')", pytrace=False)
    base = Path(tempfile.mkdtemp(prefix="airflow-ecr-redis-", dir="/tmp"))
    port = free_port()
    args = [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    args += ["--dir", str(base), "--daemonize", "no", "--protected-mode", "yes"]
    with open(base / "log", "wb") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=base)
    try:
        wait_for_port(port, proc, "redis-server", log=base / "log", ready=_redis_pong)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)
        shutil.rmtree(base, ignore_errors=True)


def _redis_pong(conn: socket.socket) -> bool:
    conn.sendall(b"PING\r\n")
    return conn.recv(64).startswith(b"+PONG")
