"""Bring the whole lab up (or keep a healthy one) and down again, by recorded pid.

``up`` starts, in order: the TLS files, the emulator, dockerd (and, with ``swarm``, the workers'
engines, which start meanwhile), the registries, the test images and (with ``swarm``) the swarm:
the lab's dockerd as manager, the workers joined to it; then it writes ``lab.json``. ``down`` stops every recorded pid
(the daemon first, the emulator last) even after a crash, and removes DIR only with ``purge``.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

from airflow_ecr_lab.dockerd import docker_client, docker_ping, start_dockerd, swarm_state
from airflow_ecr_lab.emulator_process import start_emulator
from airflow_ecr_lab.health import is_up, load
from airflow_ecr_lab.host import preflight
from airflow_ecr_lab.messages import say
from airflow_ecr_lab.paths import LabPaths, locked, read_json, read_text, write_json
from airflow_ecr_lab.processes import alive, record_pid, stop_pid
from airflow_ecr_lab.proxy import start_proxy
from airflow_ecr_lab.registries import spawn_registry
from airflow_ecr_lab.seed import load_images
from airflow_ecr_lab.spec import (
    ANONYMOUS_ADDRESS,
    ANONYMOUS_HOST,
    BUSYBOX_IMAGE,
    LAB_ACCOUNTS,
    LAB_HOSTS,
    LAB_REGISTRIES,
    LAB_REPLICAS,
    LAB_WORKERS,
    PULL_THROUGH_ACCOUNT,
    PULL_THROUGH_IMAGES,
    PULL_THROUGH_PREFIX,
    PULL_THROUGH_UPSTREAM,
    PYTHON_IMAGE,
    SWARM_ADDRESS,
    LabAccount,
)
from airflow_ecr_lab.swarm import exec_root, join_workers, node_dir, spawn_workers, wait_ready
from airflow_ecr_lab.tls import make_tls


def up(directory: Path | None = None, swarm: bool = False) -> dict[str, Any]:
    """Start the lab (or keep a healthy one); returns the contents of ``lab.json``.

    :param directory: the lab directory (default: :func:`default_dir`).
    :param swarm: also make the daemon a swarm manager and join worker engines to it.
    """
    started = time.monotonic()
    paths = LabPaths.of(directory)
    preflight(paths)
    with locked(paths):
        return _up_locked(paths, swarm, started)


def _up_locked(paths: LabPaths, swarm: bool, started: float) -> dict[str, Any]:
    if paths.lab_json.exists() or read_json(paths.pids):
        if is_up(paths.root):
            info = load(paths.root)
            if swarm and not info.get("nodes"):
                _add_swarm(paths, info)
            say("lab", f"already up at {paths.root} (swarm: {info.get('swarm')})")
            return info
        say("lab", f"stale lab at {paths.root}: cleaning it first")
        _down_locked(paths, purge=False, quiet=False)
    try:
        return _up(paths, swarm, started)
    except BaseException:
        # Leave nothing running behind a failed start (the files stay, for the logs).
        with contextlib.suppress(Exception):
            _down_locked(paths, purge=False, quiet=True)
        raise


def _add_swarm(paths: LabPaths, info: dict[str, Any]) -> None:
    """Workers joined to the manager of a lab that is up without them (``up --swarm`` after ``up``)."""
    workers = spawn_workers(paths)  # recorded in pids.json as they start: `down` stops them whatever happens
    info["pids"].update(workers)
    info["nodes"] = join_workers(paths, info["pids"]["dockerd"], workers)
    wait_ready(paths)
    info["swarm"] = True
    write_json(paths.lab_json, info)
    say("swarm", f"active, manager on {SWARM_ADDRESS}:2377; workers {', '.join(n.name for n in LAB_WORKERS)}")


def _up(paths: LabPaths, swarm: bool, started: float) -> dict[str, Any]:
    make_tls(paths.tls, LAB_HOSTS)
    say("tls", f"CA {paths.tls / 'ca.crt'}; server certificate for {', '.join(LAB_HOSTS)}")
    emulator_pid, emulator_url = start_emulator(paths)
    say("emulator", f"{emulator_url} (pid {emulator_pid})")
    dockerd_pid, created_etc_docker = start_dockerd(paths)
    say("dockerd", f"unix://{paths.socket} (pid {dockerd_pid}, private net + mount namespaces, vfs)")
    pids: dict[str, int] = {"emulator": emulator_pid, "dockerd": dockerd_pid}
    workers = spawn_workers(paths) if swarm else {}  # they start while the registries and images do
    pids.update(workers)
    for account in LAB_REGISTRIES:
        pid = spawn_registry(paths, dockerd_pid, account.name, account.host, account.address, auth=True)
        pids[f"registry-{account.name}"] = pid
        say("registry", f"{account.host} -> {account.address}:443, basic auth AWS (pid {pid})")
    pid = spawn_registry(paths, dockerd_pid, "anonymous", ANONYMOUS_HOST, ANONYMOUS_ADDRESS, auth=False)
    pids["registry-anonymous"] = pid
    say("registry", f"{ANONYMOUS_HOST} -> {ANONYMOUS_ADDRESS}:443, anonymous (pid {pid})")

    proxy_pid, proxy_url = start_proxy(paths, dockerd_pid)
    pids["proxy"] = proxy_pid
    say("proxy", f"{proxy_url} -> the registries, for HTTPS_PROXY (pid {proxy_pid})")

    pushed = load_images(paths, emulator_url)
    say("images", f"{BUSYBOX_IMAGE}, {PYTHON_IMAGE} pushed as {sum(len(v) for v in pushed.values())} refs")
    nodes: list[dict[str, Any]] = []
    if swarm:
        nodes = join_workers(paths, dockerd_pid, workers)
        wait_ready(paths)
        names = ", ".join(f"{n.name} ({n.address}, pid {workers[f'node-{n.name}']})" for n in LAB_WORKERS)
        say("swarm", f"active, manager on {SWARM_ADDRESS}:2377 (lab namespace); workers {names}")
    elif swarm_state(paths) == "active":
        say("swarm", "active (left over in the data root; kept)")
        swarm = True

    info: dict[str, Any] = {
        "dir": str(paths.root),
        "docker_host": f"unix://{paths.socket}",
        "emulator_url": emulator_url,
        "ca_cert": str(paths.tls / "ca.crt"),
        "https_proxy": proxy_url,
        "accounts": [_registry_entry(paths, a, pushed) for a in LAB_ACCOUNTS],
        "replicas": [_registry_entry(paths, a, pushed) for a in LAB_REPLICAS],
        "anonymous_registry": {
            "host": ANONYMOUS_HOST,
            "address": ANONYMOUS_ADDRESS,
            "images": pushed[ANONYMOUS_HOST],
        },
        "images": {"busybox": BUSYBOX_IMAGE, "python": PYTHON_IMAGE},
        "pull_through_cache": _pull_through_entry(),
        "pids": pids,
        "swarm": swarm,
        "nodes": nodes,
        "created_etc_docker": created_etc_docker,
        "started_at": time.time(),
    }
    write_json(paths.lab_json, info)
    say("lab", f"up in {time.monotonic() - started:.1f} s; {paths.lab_json}")
    return info


def _pull_through_entry() -> dict[str, Any]:
    """The lab's emulated pull-through cache rule, as ``lab.json`` describes it to tests."""
    cache = f"{next(a.host for a in LAB_ACCOUNTS if a.account_id == PULL_THROUGH_ACCOUNT)}/{PULL_THROUGH_PREFIX}"
    return {
        "upstream": PULL_THROUGH_UPSTREAM,
        "cache": cache,
        "option": f"{PULL_THROUGH_UPSTREAM}={cache}",  # [ecr] pull_through_cache
        "images": [name for _, name in PULL_THROUGH_IMAGES],
    }


def _registry_entry(paths: LabPaths, registry: LabAccount, pushed: dict[str, list[str]]) -> dict[str, Any]:
    """One account registry (or replica) as ``lab.json`` describes it to tests."""
    return {
        "name": registry.name,
        "account_id": registry.account_id,
        "region": registry.region,
        "host": registry.host,
        "address": registry.address,
        "htpasswd": str(paths.registry(registry.name) / "htpasswd"),
        "images": pushed[registry.host],
    }


def down(directory: Path | None = None, purge: bool = False, quiet: bool = False) -> None:
    """Stop every process the lab started (by recorded pid); remove DIR only with ``purge``.

    :param directory: the lab directory (default: :func:`default_dir`).
    :param purge: also delete the lab directory (images, registry storage, logs).
    :param quiet: print nothing.
    """
    paths = LabPaths.of(directory)
    if not paths.root.exists():
        if not quiet:
            say("lab", f"nothing at {paths.root}")
        return
    with locked(paths):
        _down_locked(paths, purge, quiet)


def _down_locked(paths: LabPaths, purge: bool, quiet: bool) -> None:
    marker = str(paths.root)
    info = read_json(paths.lab_json)
    pids: dict[str, int] = {**info.get("pids", {}), **read_json(paths.pids)}

    def report(component: str, text: str) -> None:
        if not quiet:
            say(component, text)

    dockerd_pid = pids.get("dockerd")
    if dockerd_pid and alive(dockerd_pid, marker) and docker_ping(paths.socket):
        # Leave the swarm so that a later `up` does not restart the old swarm from the data root.
        try:
            if swarm_state(paths) == "active":
                client = docker_client(paths.socket, timeout=30)
                try:
                    client.swarm.leave(force=True)
                finally:
                    client.close()
                report("swarm", "left")
        except Exception as exc:  # best effort: stopping the daemon matters more
            report("swarm", f"could not leave: {exc}")
    # The daemon first (it is the registries' client), the emulator last.
    for name in sorted(pids, key=lambda n: (n != "dockerd", n == "emulator", n)):
        report(name, f"pid {pids[name]}: {stop_pid(pids[name], marker)}")
        record_pid(paths, name, None)
    # Each dockerd's own containerd, in case dockerd had to be killed and left it running.
    for exec_dir in (paths.docker / "exec", *(exec_root(paths, n) for n in LAB_WORKERS if node_dir(paths, n).exists())):
        with contextlib.suppress(OSError, ValueError):
            containerd_pid = int(read_text(exec_dir / "containerd" / "containerd.pid").strip())
            if alive(containerd_pid, marker):
                report("containerd", f"pid {containerd_pid}: {stop_pid(containerd_pid, marker)}")
    if info.get("created_etc_docker"):
        with contextlib.suppress(OSError):
            Path("/etc/docker").rmdir()  # only if still empty
    paths.lab_json.unlink(missing_ok=True)
    if purge and paths.root.exists():
        shutil.rmtree(paths.root)
        report("lab", f"removed {paths.root}")
    else:
        report("lab", f"down; files kept in {paths.root} (--purge removes them)")
