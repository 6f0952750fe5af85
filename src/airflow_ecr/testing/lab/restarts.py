"""Fault injection on a running lab: stop or start one registry, restart the Docker daemon."""

from __future__ import annotations

from pathlib import Path

from airflow_ecr.testing.lab.dockerd import start_dockerd
from airflow_ecr.testing.lab.health import load
from airflow_ecr.testing.lab.paths import LabPaths, locked, write_json
from airflow_ecr.testing.lab.processes import alive, record_pid, stop_pid
from airflow_ecr.testing.lab.registries import registry_spec, spawn_registry


def stop_registry(directory: Path | None, name: str) -> None:
    """Stop one registry of a running lab (to test what happens when it is down).

    :param directory: the lab directory (default: :func:`default_dir`).
    :param name: an account id of the lab, or ``anonymous``.
    """
    paths = LabPaths.of(directory)
    with locked(paths):
        info = load(paths.root)
        registry_spec(info, name)
        component = f"registry-{name}"
        stop_pid(info["pids"].get(component, -1), str(paths.root))
        record_pid(paths, component, None)


def start_registry(directory: Path | None, name: str) -> int:
    """Start (again) one registry of a running lab, with its storage and htpasswd as they were.

    :param directory: the lab directory (default: :func:`default_dir`).
    :param name: an account id of the lab, or ``anonymous``.
    :return: the registry's new pid.
    """
    paths = LabPaths.of(directory)
    with locked(paths):
        info = load(paths.root)
        host, address, auth = registry_spec(info, name)
        component = f"registry-{name}"
        if alive(info["pids"].get(component, -1), str(paths.root)):
            return int(info["pids"][component])
        pid = spawn_registry(paths, info["pids"]["dockerd"], name, host, address, auth)
        info["pids"][component] = pid
        write_json(paths.lab_json, info)
        return pid


def restart_dockerd(directory: Path | None = None) -> None:
    """Restart the lab's Docker daemon, as a host's ``systemctl restart docker`` would.

    The registries live in the daemon's network namespace, which goes away with it: they are
    restarted too, with their storage, so images and credentials stay as they were.

    :param directory: the lab directory (default: :func:`default_dir`).
    """
    paths = LabPaths.of(directory)
    with locked(paths):
        info = load(paths.root)
        marker = str(paths.root)
        pids = info["pids"]
        for name in [n for n in pids if n.startswith("registry-")] + ["dockerd"]:
            stop_pid(pids[name], marker)
        dockerd_pid, _ = start_dockerd(paths)
        pids["dockerd"] = dockerd_pid
        for name in [n for n in pids if n.startswith("registry-")]:
            registry = name.removeprefix("registry-")
            host, address, auth = registry_spec(info, registry)
            pids[name] = spawn_registry(paths, dockerd_pid, registry, host, address, auth)
        write_json(paths.lab_json, info)
