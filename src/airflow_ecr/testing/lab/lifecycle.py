"""Bring the whole lab up (or keep a healthy one) and down again, by recorded pid.

``up`` starts, in order: the TLS files, the emulator, dockerd, the registries, the test images and
(with ``swarm``) a single-node swarm, then writes ``lab.json``. ``down`` stops every recorded pid
(the daemon first, the emulator last) even after a crash, and removes DIR only with ``purge``.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

from airflow_ecr.testing.lab.dockerd import docker_client, docker_ping, start_dockerd, swarm_init, swarm_state
from airflow_ecr.testing.lab.emulator_process import start_emulator
from airflow_ecr.testing.lab.health import is_up, load
from airflow_ecr.testing.lab.host import preflight
from airflow_ecr.testing.lab.messages import say
from airflow_ecr.testing.lab.paths import LabPaths, locked, read_json, write_json
from airflow_ecr.testing.lab.processes import alive, record_pid, stop_pid
from airflow_ecr.testing.lab.registries import spawn_registry
from airflow_ecr.testing.lab.seed import load_images
from airflow_ecr.testing.lab.spec import (
    ANONYMOUS_ADDRESS,
    ANONYMOUS_HOST,
    BUSYBOX_IMAGE,
    LAB_ACCOUNTS,
    LAB_HOSTS,
    PYTHON_IMAGE,
    SWARM_ADDRESS,
)
from airflow_ecr.testing.lab.tls import make_tls


def up(directory: Path | None = None, swarm: bool = False) -> dict[str, Any]:
    """Start the lab (or keep a healthy one); returns the contents of ``lab.json``.

    :param directory: the lab directory (default: :func:`default_dir`).
    :param swarm: also make the daemon a single-node swarm manager.
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
            if swarm and not info.get("swarm"):
                swarm_init(paths)
                info["swarm"] = True
                write_json(paths.lab_json, info)
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


def _up(paths: LabPaths, swarm: bool, started: float) -> dict[str, Any]:
    make_tls(paths.tls, LAB_HOSTS)
    say("tls", f"CA {paths.tls / 'ca.crt'}; server certificate for {', '.join(LAB_HOSTS)}")
    emulator_pid, emulator_url = start_emulator(paths)
    say("emulator", f"{emulator_url} (pid {emulator_pid})")
    dockerd_pid, created_etc_docker = start_dockerd(paths)
    say("dockerd", f"unix://{paths.socket} (pid {dockerd_pid}, private net + mount namespaces, vfs)")
    pids: dict[str, int] = {"emulator": emulator_pid, "dockerd": dockerd_pid}
    for account in LAB_ACCOUNTS:
        pid = spawn_registry(paths, dockerd_pid, account.account_id, account.host, account.address, auth=True)
        pids[f"registry-{account.account_id}"] = pid
        say("registry", f"{account.host} -> {account.address}:443, basic auth AWS (pid {pid})")
    pid = spawn_registry(paths, dockerd_pid, "anonymous", ANONYMOUS_HOST, ANONYMOUS_ADDRESS, auth=False)
    pids["registry-anonymous"] = pid
    say("registry", f"{ANONYMOUS_HOST} -> {ANONYMOUS_ADDRESS}:443, anonymous (pid {pid})")

    pushed = load_images(paths, emulator_url)
    say("images", f"{BUSYBOX_IMAGE}, {PYTHON_IMAGE} pushed as {sum(len(v) for v in pushed.values())} refs")
    if swarm:
        swarm_init(paths)
        say("swarm", f"active, manager on {SWARM_ADDRESS}:2377 (lab namespace)")
    elif swarm_state(paths) == "active":
        say("swarm", "active (left over in the data root; kept)")
        swarm = True

    info: dict[str, Any] = {
        "dir": str(paths.root),
        "docker_host": f"unix://{paths.socket}",
        "emulator_url": emulator_url,
        "ca_cert": str(paths.tls / "ca.crt"),
        "accounts": [
            {
                "account_id": a.account_id,
                "region": a.region,
                "host": a.host,
                "address": a.address,
                "htpasswd": str(paths.registry(a.account_id) / "htpasswd"),
                "images": pushed[a.host],
            }
            for a in LAB_ACCOUNTS
        ],
        "anonymous_registry": {
            "host": ANONYMOUS_HOST,
            "address": ANONYMOUS_ADDRESS,
            "images": pushed[ANONYMOUS_HOST],
        },
        "images": {"busybox": BUSYBOX_IMAGE, "python": PYTHON_IMAGE},
        "pids": pids,
        "swarm": swarm,
        "created_etc_docker": created_etc_docker,
        "started_at": time.time(),
    }
    write_json(paths.lab_json, info)
    say("lab", f"up in {time.monotonic() - started:.1f} s; {paths.lab_json}")
    return info


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
    # dockerd's own containerd, in case dockerd had to be killed and left it running.
    with contextlib.suppress(OSError, ValueError):
        containerd_pid = int((paths.docker / "exec" / "containerd" / "containerd.pid").read_text().strip())
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
