"""
A damaged host cache never fails a task: real EcrDockerOperator tasks against the lab with the
cache file corrupt, truncated, readable by others, the directory open to others or owned by
someone else, and the directory unwritable (a read-only filesystem, mounted in a private mount
namespace so nothing outside the test sees it). Each is ignored or bypassed with a warning.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.reliability_support import CONN, LabTask, Recorder, lab_task

pytestmark = pytest.mark.lab
__all__ = ["lab_task"]

NOBODY = 65534


def corrupt(path: Path) -> None:
    path.write_text("{not json")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def readable_by_others(path: Path) -> None:
    os.chmod(path, 0o644)


def directory_open_to_others(path: Path) -> None:
    os.chmod(path.parent, 0o755)


def directory_of_another_user(path: Path) -> None:
    os.chown(path.parent, NOBODY, NOBODY)


# damage, warning, whether the cache is used again afterwards (the entry rewritten, private)
CASES: dict[str, tuple[Callable[[Path], None], str, bool]] = {
    "corrupt": (corrupt, "Ignoring unreadable ECR token cache file", True),
    "truncated": (truncate, "Ignoring unreadable ECR token cache file", True),
    "file-0644": (readable_by_others, "not private to this user", True),
    "dir-0755": (directory_open_to_others, "is accessible to other users (mode 755)", False),
    "dir-other-owner": (directory_of_another_user, "belongs to another user", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_cache_is_bypassed_with_a_warning_and_the_task_succeeds(lab_task: LabTask, case: str) -> None:
    damage, warning, rewritten = CASES[case]
    assert lab_task.run() == "ran"
    (path,) = lab_task.cache_files()
    damage(path)
    with Recorder("airflow_ecr.tokens") as log:
        assert lab_task.run() == "ran"
    assert warning in log.text(), log.text()
    assert len(lab_task.calls()) == 2  # the damaged entry was not used
    if rewritten:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["password"] == lab_task.emulator.password(
            lab_task.lab.accounts[0]["account_id"]
        )
        assert lab_task.run() == "ran" and len(lab_task.calls()) == 2  # and serves the next task


# A task in a private mount namespace whose cache directory is on a read-only filesystem.
READ_ONLY_TASK = textwrap.dedent(
    """
    import sys
    from airflow_ecr.operators.docker import EcrDockerOperator
    op = EcrDockerOperator(
        task_id="ro", image=sys.argv[1], aws_conn_id=sys.argv[2], docker_url=sys.argv[3],
        network_mode="none", mount_tmp_dir=False, auto_remove="success", force_pull=True,
        command=["echo", "ran-on-read-only"],
    )
    print("RESULT", op.execute({}))
    """
)


@pytest.mark.parametrize("existing", [False, True], ids=["cannot-create", "cannot-write"])
def test_cache_on_a_read_only_filesystem_is_bypassed(lab_task: LabTask, tmp_path: Path, existing: bool) -> None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to mount a read-only filesystem in a private mount namespace")
    mountpoint = tmp_path / "ro"
    mountpoint.mkdir()
    cache_dir = mountpoint / "airflow-ecr"
    # cannot-create: an empty read-only fs. cannot-write: the cache directory exists (0700, with a
    # stray file in it), then the fs is remounted read-only.
    prepare = f"mkdir -m 0700 {cache_dir} && echo garbage > {cache_dir}/x.json && " if existing else ""
    script = (
        f"mount -t tmpfs -o size=1m tmpfs {mountpoint} && {prepare}"
        f'mount -o remount,ro {mountpoint} && exec {sys.executable} -c "$TASK" "$@"'
    )
    env = {**os.environ, "AIRFLOW__ECR__CACHE_DIR": str(cache_dir), "TASK": READ_ONLY_TASK}
    task_args = [lab_task.image(), CONN, lab_task.lab.docker_host]
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *task_args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "RESULT ran-on-read-only" in result.stdout, result.stdout[-3000:]
    output = result.stdout + result.stderr  # Airflow's logging writes to stdout
    warnings = "\n".join(line for line in output.splitlines() if "warning" in line and "airflow_ecr.tokens" in line)
    if existing:
        assert "Cannot open the ECR token cache lock (Read-only file system)" in warnings, output[-3000:]
        assert "Cannot write the ECR token cache" in warnings and "Read-only file system" in warnings, warnings
    else:
        assert "ECR token cache disabled: cannot create" in warnings and "Read-only file system" in warnings
    assert len(lab_task.calls()) == 1
    assert not any(mountpoint.iterdir())  # the mount never existed outside the namespace
