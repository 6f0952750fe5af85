"""Fault injection on a running lab: stop or start one registry, restart the Docker daemon, cut a
swarm worker off the registries."""

from __future__ import annotations

from pathlib import Path

from airflow_ecr_lab.dockerd import start_dockerd
from airflow_ecr_lab.health import load
from airflow_ecr_lab.paths import LabPaths, locked, write_json
from airflow_ecr_lab.processes import alive, record_pid, stop_pid
from airflow_ecr_lab.proxy import start_proxy
from airflow_ecr_lab.registries import registry_spec, spawn_registry
from airflow_ecr_lab.swarm import in_namespace, registry_route, relink_workers, worker


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

    The registries and the proxy live in the daemon's network namespace, which goes away with it:
    they are restarted too (registries with their storage, the proxy on its port), so images,
    credentials and the lab's ``https_proxy`` stay as they were. Swarm workers keep running; their
    links to the new namespace are made again, and this returns once the manager sees them ready.

    :param directory: the lab directory (default: :func:`default_dir`).
    """
    paths = LabPaths.of(directory)
    with locked(paths):
        info = load(paths.root)
        marker = str(paths.root)
        pids = info["pids"]
        for name in [n for n in pids if n.startswith("registry-")] + ["proxy", "dockerd"]:
            if name in pids:
                stop_pid(pids[name], marker)
        dockerd_pid, _ = start_dockerd(paths)
        pids["dockerd"] = dockerd_pid
        for name in [n for n in pids if n.startswith("registry-")]:
            registry = name.removeprefix("registry-")
            host, address, auth = registry_spec(info, registry)
            pids[name] = spawn_registry(paths, dockerd_pid, registry, host, address, auth)
        if "proxy" in pids:
            pids["proxy"], _ = start_proxy(paths, dockerd_pid, port=int(info["https_proxy"].rsplit(":", 1)[1]))
        write_json(paths.lab_json, info)
        relink_workers(paths, info, dockerd_pid)


def cut_registries(directory: Path | None, node: str) -> None:
    """Take a swarm worker's route to the registries away: its pulls fail (``network is unreachable``).

    The worker stays in the swarm (its route to the manager is kept). :func:`restore_registries` undoes it.

    :param directory: the lab directory (default: :func:`default_dir`).
    :param node: a worker's name (``worker-1``).
    """
    paths = LabPaths.of(directory)
    with locked(paths):
        info = load(paths.root)
        in_namespace(info["pids"][f"node-{node}"], registry_route(worker(info, node), "del"))


def restore_registries(directory: Path | None, node: str) -> None:
    """Give a swarm worker its route to the registries back (after :func:`cut_registries`; idempotent).

    :param directory: the lab directory (default: :func:`default_dir`).
    :param node: a worker's name (``worker-1``).
    """
    paths = LabPaths.of(directory)
    with locked(paths):
        info = load(paths.root)
        route = registry_route(worker(info, node), "replace")
        in_namespace(info["pids"][f"node-{node}"], route)
