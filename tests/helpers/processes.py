"""Processes the tests start: a free loopback port for a server, and waiting for it.

They are stopped with :func:`airflow_ecr_lab.processes.stop_process` (the lab's, one for the
lab, the tests and the benchmarks).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int,
    proc: subprocess.Popen[Any],
    name: str,
    log: Path | None = None,
    timeout: float = 30.0,
    ready: Callable[[socket.socket], bool] | None = None,
) -> None:
    """
    Until ``127.0.0.1:port`` accepts a connection (and ``ready(connection)`` is true, if given).

    :param proc: the server's process: the wait fails at once, with its ``log``, if it exits.
    :param name: the server, for the failure messages.
    :param log: the server's log file, shown when it exits early.
    :param timeout: seconds to wait before failing.
    :param ready: a further check on an open connection (e.g. a protocol ping).
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            if ready is None or ready(conn):
                return
        if proc.poll() is not None:
            output = log.read_text(errors="replace") if log is not None and log.exists() else ""
            raise AssertionError(f"{name} exited with {proc.returncode} before listening on port {port}:\n{output}")
        assert time.monotonic() < deadline, f"{name} did not start within {timeout} s"
        time.sleep(0.1)
