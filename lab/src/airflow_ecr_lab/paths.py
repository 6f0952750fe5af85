"""
The lab directory: where it is, its layout, its lock and its files.

The lab runs as root, so its directory is a trust boundary: a directory someone else created (or
can write to) could hold symlinks that turn the lab's writes into writes to any file. So the
default directory is private to its user (``$XDG_RUNTIME_DIR/airflow-ecr-lab``, else
``/run/airflow-ecr-lab`` for root, else one named by the user id in the temp directory), created
0700; a directory not owned by the running user, or writable by its group or others, is refused;
and every lab file is opened with ``O_NOFOLLOW`` (temp files also with ``O_EXCL``, under a random
name), through :func:`open_lab_file`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_ecr_lab.messages import LabError

DEFAULT_NAME = "airflow-ecr-lab"
ENV_DIR = "AIRFLOW_ECR_LAB_DIR"
# sun_path is 108 bytes; containerd's socket sits deepest: DIR/docker/exec/containerd/containerd.sock.
MAX_SOCKET_PATH = 100
# Every lab file's open flags: never through a symlink, never inherited by the lab's children.
_NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _private_base() -> Path:
    """Where the default lab directory goes: a directory only this user (or root) can write to."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime)
    if os.geteuid() == 0:
        return Path("/run")
    return Path(tempfile.gettempdir())


def default_dir() -> Path:
    """The lab directory: ``$AIRFLOW_ECR_LAB_DIR``, else a private default (see the module's docstring)."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    base = _private_base()
    # In the shared temp directory the name carries the user id, and the owner check below still applies.
    return base / (DEFAULT_NAME if base != Path(tempfile.gettempdir()) else f"{DEFAULT_NAME}-{os.geteuid()}")


# What `--dir` says when it is left out, for the command line's help.
DEFAULT_DIR = "$XDG_RUNTIME_DIR/airflow-ecr-lab, else /run/airflow-ecr-lab (root)"


def _refuse(directory: Path, reason: str) -> LabError:
    return LabError(
        f"The lab directory {directory} {reason}: the lab runs as root and trusts what is in it, so use a "
        f"directory of your own with mode 0700 (e.g. `mktemp -d`, or leave {ENV_DIR} and --dir unset)."
    )


def check_private_dir(directory: Path) -> None:
    """
    Refuse a lab directory this user does not own, or that its group or others may write to.

    :param directory: the lab directory (it must exist).
    :raises LabError: one sentence naming the directory and what to do.
    """
    info = os.stat(directory)
    uid = os.geteuid()
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(directory, "is not a directory")
    if info.st_uid != uid:
        raise _refuse(directory, f"is owned by uid {info.st_uid}, not by the user running the lab (uid {uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(directory, f"is writable by its group or others (mode {stat.S_IMODE(info.st_mode):04o})")


def private_dir(directory: Path) -> None:
    """
    Create ``directory`` 0700 if it is missing (its parents as ``mkdir -p`` would), then check it.

    :param directory: the lab directory.
    :raises LabError: from :func:`check_private_dir`.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    check_private_dir(directory)


def open_lab_file(path: Path, flags: int, mode: int = 0o600) -> int:
    """
    ``os.open`` for every lab file: never through a symlink (an error instead).

    :param path: the file.
    :param flags: ``os.O_*`` flags (``O_NOFOLLOW`` and ``O_CLOEXEC`` are added).
    :param mode: the mode of a file this call creates.
    :raises LabError: when ``path`` is a symlink.
    """
    try:
        return os.open(path, flags | _NO_FOLLOW, mode)
    except OSError:
        if os.path.islink(path):
            raise LabError(
                f"{path} is a symlink: the lab never writes through one; remove it, and check who "
                "else can write to the lab directory."
            ) from None
        raise


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """
    Write ``path`` atomically: a new temp file (random name, ``O_EXCL``), then ``os.replace``.

    :param path: the file.
    :param data: its whole content.
    :param mode: its mode.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = open_lab_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have taken bits away
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class LabPaths:
    """Where each part of a lab lives under its directory.

    :param root: the lab directory (absolute).
    """

    root: Path

    @classmethod
    def of(cls, directory: Path | None) -> LabPaths:
        """The layout of ``directory`` (default: :func:`default_dir`), resolved.

        :param directory: the lab directory, or None.
        """
        given = directory or default_dir()
        # Resolving follows a symlink: one planted by someone else would choose where the lab writes.
        if given.is_symlink() and given.lstat().st_uid != os.geteuid():
            raise _refuse(given, f"is a symlink owned by uid {given.lstat().st_uid}")
        return cls(given.resolve())

    @property
    def lab_json(self) -> Path:
        return self.root / "lab.json"

    @property
    def pids(self) -> Path:
        return self.root / "pids.json"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    @property
    def etc_docker(self) -> Path:
        return self.root / "etc-docker"

    @property
    def docker(self) -> Path:
        return self.root / "docker"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def emulator(self) -> Path:
        return self.root / "emulator"

    def registry(self, name: str) -> Path:
        return self.root / "registries" / name

    @property
    def emulator_token(self) -> Path:
        """The emulator's admin API token (0600): only the lab's owner can drive the emulator."""
        return self.root / "emulator" / "admin-token"


@contextlib.contextmanager
def locked(paths: LabPaths) -> Generator[None, None, None]:
    """Serialize ``up`` and ``down`` on one lab directory (e.g. parallel pytest sessions).

    :param paths: the lab's layout.
    :raises LabError: a lab directory that is not private to this user (:func:`check_private_dir`).
    """
    private_dir(paths.root)
    with os.fdopen(open_lab_file(paths.root / ".lock", os.O_RDWR | os.O_CREAT), "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read_text(path: Path) -> str:
    """A lab file's text (undecodable bytes replaced), never read through a symlink.

    :param path: the file.
    :raises OSError: when it is missing or a symlink.
    """
    with os.fdopen(os.open(path, os.O_RDONLY | _NO_FOLLOW), "r", errors="replace") as f:
        return f.read()


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when it is missing, unreadable, a symlink or not an object.

    :param path: a JSON file.
    """
    try:
        data = json.loads(read_text(path))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (:func:`write_private`), 0600.

    :param path: the JSON file.
    :param data: a JSON object.
    """
    write_private(path, (json.dumps(data, indent=2) + "\n").encode())


def new_emulator_token(paths: LabPaths) -> str:
    """
    A fresh admin token for the lab's emulator (random, 256 bits), kept 0600 in the lab directory.

    :param paths: the lab's layout.
    """
    token = secrets.token_urlsafe(32)
    paths.emulator_token.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(paths.emulator_token, token.encode())
    return token


def emulator_token(paths: LabPaths) -> str:
    """
    The lab emulator's admin token (only the lab directory's owner can read it).

    :param paths: the lab's layout.
    :raises LabError: the lab has no token (not up, or started by an older airflow-ecr).
    """
    try:
        with os.fdopen(open_lab_file(paths.emulator_token, os.O_RDONLY), "r") as f:
            token = f.read().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        raise LabError(
            f"The lab in {paths.root} has no emulator admin token ({paths.emulator_token}): start it with "
            "`python -m airflow_ecr_lab up` (a lab started by an older airflow-ecr: down, then up)."
        )
    return token
