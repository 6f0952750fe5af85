"""Is the lab up: the health of each component, ``status``, ``is_up`` and the lab description ``load``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_ecr.testing.emulator_admin import EmulatorClient
from airflow_ecr_lab.dockerd import docker_ping, swarm_state
from airflow_ecr_lab.messages import LabError, say
from airflow_ecr_lab.netns import probe
from airflow_ecr_lab.paths import LabPaths, emulator_token, read_json
from airflow_ecr_lab.processes import alive
from airflow_ecr_lab.swarm import node_states


def health(paths: LabPaths) -> Iterator[tuple[str, bool, str]]:
    """(component, healthy, detail) for every component of the lab described in lab.json.

    :param paths: the lab's layout.
    """
    info = read_json(paths.lab_json)
    if not info:
        yield "lab.json", False, f"missing or unreadable: {paths.lab_json}"
        return
    marker = str(paths.root)
    pids = info.get("pids", {})
    url = str(info.get("emulator_url", ""))
    try:
        ok = bool(EmulatorClient(url, timeout=2, token=emulator_token(paths)).health().get("ok"))
    except (OSError, ValueError, TypeError, LabError):
        ok = False
    yield "emulator", ok and alive(pids.get("emulator", -1), marker), f"{url} (pid {pids.get('emulator')})"
    ca = paths.tls / "ca.crt"
    registries = [(a["account_id"], a["host"], a["address"], "401") for a in info.get("accounts", [])]
    registries += [(r["name"], r["host"], r["address"], "401") for r in info.get("replicas", [])]
    anonymous = info.get("anonymous_registry", {})
    registries.append(("anonymous", anonymous.get("host", ""), anonymous.get("address", ""), "200"))
    for name, host, address, expected in registries:
        pid = pids.get(f"registry-{name}", -1)
        answer = probe(pid, address, host, ca) if alive(pid, marker) else "not running"
        yield "registry", answer == expected, f"{host} -> {address}:443 (pid {pid}): GET /v2/ {answer}"
    pid = pids.get("proxy", -1)
    yield "proxy", alive(pid, marker), f"{info.get('https_proxy')} (pid {pid})"
    pid = pids.get("dockerd", -1)
    ok = alive(pid, marker) and docker_ping(paths.socket)
    yield "dockerd", ok, f"{info.get('docker_host')} (pid {pid})"
    if ok and info.get("swarm"):
        state = swarm_state(paths)
        yield "swarm", state == "active", state
    nodes = [n for n in info.get("nodes", []) if n.get("role") == "worker"]
    states = node_states(paths) if nodes and ok else {}
    for node in nodes:
        pid = pids.get(f"node-{node['name']}", -1)
        running = alive(pid, marker) and docker_ping(Path(node["docker_host"].removeprefix("unix://")))
        seen = states.get(node["name"], "unknown") if running else "not running"
        detail = f"{node['name']} {node['docker_host']} (pid {pid}, {node['address']}): {seen}"
        yield "node", running and seen == "ready", detail


def status(directory: Path | None = None) -> bool:
    """Print the health of every component; returns True when all are healthy.

    :param directory: the lab directory (default: :func:`default_dir`).
    """
    healthy = True
    for component, ok, detail in health(LabPaths.of(directory)):
        say(component, f"{'ok  ' if ok else 'DOWN'} {detail}")
        healthy = healthy and ok
    return healthy


def is_up(directory: Path | None = None) -> bool:
    """True when a lab runs at ``directory`` and every component is healthy.

    :param directory: the lab directory (default: :func:`default_dir`).
    """
    return all(ok for _, ok, _ in health(LabPaths.of(directory)))


def load(directory: Path | None = None) -> dict[str, Any]:
    """The lab description (``lab.json``) of a lab that is up.

    :param directory: the lab directory (default: :func:`default_dir`).
    """
    paths = LabPaths.of(directory)
    info = read_json(paths.lab_json)
    if not info:
        raise LabError(f"no lab at {paths.root}: python -m airflow_ecr_lab up --dir {paths.root}")
    return info
