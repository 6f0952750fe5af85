"""The lab's Docker daemon: ``dockerd`` in private network and mount namespaces, its client, its swarm.

Its own loopback device carries the registry addresses, ``DIR/hosts`` is bound over ``/etc/hosts``
and ``DIR/etc-docker`` over ``/etc/docker`` (``certs.d/<host>/ca.crt``): only the daemon sees the
names, the addresses and the CA. :func:`spawn_engine` starts any of the lab's engines this way (the
swarm workers too, :mod:`~airflow_ecr_lab.swarm`); the manager's loopback also carries the
swarm's address.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

from airflow_ecr_lab.paths import LabPaths, read_text, write_private
from airflow_ecr_lab.processes import spawn, wait_until
from airflow_ecr_lab.spec import LAB_HOSTS, SWARM_ADDRESS


def start_dockerd(paths: LabPaths) -> tuple[int, bool]:
    """Start dockerd in private net + mount namespaces; returns (pid, whether /etc/docker was created).

    :param paths: the lab's layout (its TLS files must exist).
    """
    hosts = (
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
        "# airflow-ecr lab registries (seen by the lab's dockerd only)\n"
        + "".join(f"{address} {host}\n" for host, address in LAB_HOSTS.items())
    )
    write_private(paths.hosts, hosts.encode(), 0o644)  # bound over the daemon's /etc/hosts: readable
    # Updated in place, never recreated: running swarm workers have this very directory bound over
    # their /etc/docker, and would not see a new one (restart_dockerd keeps them running).
    certs_root = paths.etc_docker / "certs.d"
    if certs_root.exists():
        for stale in certs_root.iterdir():
            if stale.name not in LAB_HOSTS:
                shutil.rmtree(stale)
    for host in LAB_HOSTS:
        certs = certs_root / host
        certs.mkdir(parents=True, exist_ok=True)
        write_private(certs / "ca.crt", read_text(paths.tls / "ca.crt").encode(), 0o644)
    # Binding needs a mount point; /etc/docker normally exists (docker-registry ships
    # /etc/docker/registry). Creating it is a global change, so it is recorded and undone by `down`.
    created_etc_docker = False
    if not Path("/etc/docker").exists():
        Path("/etc/docker").mkdir(mode=0o755)
        created_etc_docker = True
    # The swarm manager's address too, present before the daemon restarts a swarm from its data root.
    addresses = " && ".join(f"ip addr add {a}/32 dev lo" for a in (*LAB_HOSTS.values(), SWARM_ADDRESS))
    pid = spawn_engine(paths, "dockerd", paths.docker, paths.socket, "airflow-ecr-lab", addresses)
    wait_until("dockerd", lambda: docker_ping(paths.socket), pid, str(paths.root), paths.docker / "dockerd.log", 60)
    return pid, created_etc_docker


def spawn_engine(
    paths: LabPaths,
    name: str,
    root: Path,
    socket_path: Path,
    containerd_namespace: str,
    network: str,
    hostname: str | None = None,
    exec_root: Path | None = None,
) -> int:
    """Spawn one dockerd in new net + mount (+ UTS) namespaces seeing the lab's hosts and CA; its pid.

    It is not waited for: the caller waits for :func:`docker_ping` on ``socket_path``.

    :param paths: the lab's layout (``hosts`` and ``etc-docker`` must exist).
    :param name: its record in ``pids.json``.
    :param root: its directory (data root, pid file, log).
    :param socket_path: its API socket.
    :param containerd_namespace: its containerd namespaces' prefix (one per engine).
    :param network: shell commands setting up its namespace's addresses (after ``lo`` is up).
    :param hostname: its own host name (a UTS namespace), which names it as a swarm node.
    :param exec_root: its exec root (default ``root/exec``; containerd's socket path must stay short).
    """
    exec_root = exec_root or root / "exec"
    for directory in (root / "data", exec_root):
        directory.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    dockerd = [
        "dockerd",
        f"--data-root={root / 'data'}",
        f"--exec-root={exec_root}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"--host=unix://{socket_path}",
        "--iptables=false",
        "--ip-masq=false",
        "--bridge=none",
        "--storage-driver=vfs",
        # Own namespaces in case dockerd finds a system containerd (it then uses it, not its own).
        f"--containerd-namespace={containerd_namespace}",
        f"--containerd-plugins-namespace={containerd_namespace}-plugins",
    ]
    script = " && ".join(
        [
            "ip link set lo up",
            *([network] if network else []),
            *([f"hostname {shlex.quote(hostname)}"] if hostname else []),
            f"mount --bind {shlex.quote(str(paths.hosts))} /etc/hosts",
            f"mount --bind {shlex.quote(str(paths.etc_docker))} /etc/docker",
            f"exec {shlex.join(dockerd)}",
        ]
    )
    namespaces = ["--net", "--mount", *(["--uts"] if hostname else [])]
    argv = ["unshare", *namespaces, "--propagation", "private", "--", "sh", "-c", script]
    return spawn(paths, name, argv, root / "dockerd.log")


def docker_client(socket_path: Path, timeout: int = 120) -> Any:
    """A docker-py client of the daemon at ``socket_path`` (close it after use).

    :param socket_path: the daemon's unix socket.
    :param timeout: seconds per API call.
    """
    import docker

    return docker.DockerClient(base_url=f"unix://{socket_path}", timeout=timeout)


def docker_ping(socket_path: Path) -> bool:
    """True when the daemon at ``socket_path`` answers a ping.

    :param socket_path: the daemon's unix socket.
    """
    if not socket_path.exists():
        return False
    try:
        client = docker_client(socket_path, timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure here only means "not ready yet"
        return False


def swarm_state(paths: LabPaths) -> str:
    """The daemon's swarm state (``active``, ``inactive``, ...).

    :param paths: the lab's layout.
    """
    client = docker_client(paths.socket, timeout=10)
    try:
        return str(client.info().get("Swarm", {}).get("LocalNodeState", "inactive"))
    finally:
        client.close()


def swarm_init(paths: LabPaths) -> None:
    """Make the daemon a swarm manager, unless it is one already (:mod:`~airflow_ecr_lab.swarm` adds workers).

    :param paths: the lab's layout.
    """
    client = docker_client(paths.socket, timeout=60)
    try:
        if client.info().get("Swarm", {}).get("LocalNodeState") != "active":
            # The namespace's own loopback: only the lab's workers (linked to it) reach the manager.
            client.swarm.init(advertise_addr=SWARM_ADDRESS, listen_addr=f"{SWARM_ADDRESS}:2377")
    finally:
        client.close()
