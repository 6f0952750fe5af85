"""The lab directory: where it is, its layout, its lock and its JSON files."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DIR = "/tmp/airflow-ecr-lab"
ENV_DIR = "AIRFLOW_ECR_LAB_DIR"
# sun_path is 108 bytes; containerd's socket sits deepest: DIR/docker/exec/containerd/containerd.sock.
MAX_SOCKET_PATH = 100


def default_dir() -> Path:
    """The lab directory: ``$AIRFLOW_ECR_LAB_DIR`` or ``/tmp/airflow-ecr-lab``."""
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


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
        return cls((directory or default_dir()).resolve())

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


@contextlib.contextmanager
def locked(paths: LabPaths) -> Generator[None, None, None]:
    """Serialize ``up`` and ``down`` on one lab directory (e.g. parallel pytest sessions).

    :param paths: the lab's layout.
    """
    paths.root.mkdir(parents=True, exist_ok=True)
    with (paths.root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when it is missing, unreadable or not an object.

    :param path: a JSON file.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (temp file + ``os.replace``).

    :param path: the JSON file.
    :param data: a JSON object.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
