"""The one way the lab, the tests and the benchmarks stop a process they started (``stop_process``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from airflow_ecr_lab.processes import stop_process

# A child that ignores SIGTERM.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)


def _started(code: str, **kwargs: object) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_a_process_that_exits_on_sigterm_is_stopped_and_reaped() -> None:
    proc = _started("import time; print('ready', flush=True); time.sleep(60)")
    assert stop_process(proc) == "stopped"
    assert proc.returncode is not None


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    proc = _started(STUBBORN)
    start = time.monotonic()
    assert stop_process(proc, timeout=0.5).startswith("killed")
    assert proc.returncode == -9 and time.monotonic() - start < 5


def test_group_stops_the_children_too() -> None:
    code = (
        "import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(child.pid, flush=True); print('ready', flush=True); child.wait()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    assert proc.stdout.readline().strip() == b"ready"
    assert stop_process(proc, timeout=5, group=True) == "stopped"
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild)


def test_a_process_already_gone_is_left_alone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert stop_process(proc) == "not running"
