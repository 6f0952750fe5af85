"""The lab's processes: started detached, recorded in ``pids.json`` at once, stopped by pid.

Each process is identified by its pid and a marker (the lab directory) that its command line must
contain, so that a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_ecr_lab.messages import LabError
from airflow_ecr_lab.paths import LabPaths, open_lab_file, read_json, read_text, write_json

STOP_TIMEOUT = 20.0

# Popen objects of the processes this interpreter started, so that stopping them also reaps them.
_CHILDREN: dict[int, subprocess.Popen[Any]] = {}


def record_pid(paths: LabPaths, name: str, pid: int | None) -> None:
    """Record (or, with None, forget) the pid of the lab's component ``name`` in ``pids.json``.

    :param paths: the lab's layout.
    :param name: the component, e.g. ``dockerd`` or ``registry-111111111111``.
    :param pid: its pid, or None once it is stopped.
    """
    pids = read_json(paths.pids)
    if pid is None:
        pids.pop(name, None)
    else:
        pids[name] = pid
    write_json(paths.pids, pids)


def alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs (not a zombie) a command line containing ``marker`` (pid reuse guard).

    :param pid: the process id.
    :param marker: a string its command line contains (the lab directory).
    """
    child = _CHILDREN.get(pid)
    if child is not None:
        # Our own child: no reuse possible before it is reaped, and its cmdline reads empty while
        # it is in execve, so trust poll().
        return child.poll() is None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and marker in cmdline


def spawn(
    paths: LabPaths,
    name: str,
    argv: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> int:
    """Start ``argv`` detached (its own session), output appended to ``log``; returns its recorded pid.

    :param paths: the lab's layout.
    :param name: the component, as recorded in ``pids.json``.
    :param argv: the command.
    :param log: the file that receives its stdout and stderr.
    :param env: its environment (default: this process's).
    :param pass_fds: file descriptors it inherits (a listening socket made in another namespace).
    """
    with os.fdopen(open_lab_file(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab") as out:
        # A new session: the lab outlives the shell (or pytest) that started it.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            pass_fds=pass_fds,
        )
    _CHILDREN[proc.pid] = proc
    record_pid(paths, name, proc.pid)
    return proc.pid


def stop_pid(pid: int, marker: str, timeout: float = STOP_TIMEOUT, group: bool = False) -> str:
    """SIGTERM ``pid``, wait, SIGKILL after ``timeout``; returns what happened.

    :param pid: the process id.
    :param marker: a string its command line contains (the lab directory).
    :param timeout: seconds between SIGTERM and SIGKILL.
    :param group: signal its whole process group (a process started with ``start_new_session=True``,
        whose children must go with it).
    """
    if not alive(pid, marker):
        return "not running"
    _signal(pid, signal.SIGTERM, group)
    if _wait_gone(pid, marker, timeout):
        return "stopped"
    _signal(pid, signal.SIGKILL, group)
    _wait_gone(pid, marker, 5)
    return f"killed (no exit {timeout:.0f} s after SIGTERM)"


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0, group: bool = False) -> str:
    """:func:`stop_pid` for a process this interpreter started (tests' and benchmarks' servers), reaped.

    Its ``Popen`` answers whether it runs, so no marker is needed: its pid cannot be reused before
    it is reaped.

    :param proc: the process.
    :param timeout: seconds between SIGTERM and SIGKILL.
    :param group: signal its whole process group (start it with ``start_new_session=True``).
    """
    _CHILDREN[proc.pid] = proc
    try:
        return stop_pid(proc.pid, "", timeout, group)
    finally:
        _CHILDREN.pop(proc.pid, None)


def _signal(pid: int, sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_gone(pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child = _CHILDREN.get(pid)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(0.1)
        if not alive(pid, marker):
            _CHILDREN.pop(pid, None)
            return True
        time.sleep(0.1)
    return False


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = read_text(log).splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n    ".join(text)


def wait_until(what: str, check: Callable[[], bool], pid: int, marker: str, log: Path, timeout: float) -> None:
    """Wait for ``check()`` to be true while ``pid`` runs; LabError with the log's tail otherwise.

    :param what: what is starting, for the error message.
    :param check: the readiness test.
    :param pid: the process that must keep running meanwhile.
    :param marker: a string its command line contains (the lab directory).
    :param log: its log file.
    :param timeout: seconds to wait.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not alive(pid, marker):
            code = _CHILDREN[pid].poll() if pid in _CHILDREN else None
            raise LabError(f"{what} exited ({code}) during start-up; last lines of {log}:\n    {_log_tail(log)}")
        time.sleep(0.1)
    raise LabError(f"{what} not ready after {timeout:.0f} s; last lines of {log}:\n    {_log_tail(log)}")
