"""The lab's Docker daemon: ``dockerd`` in private network and mount namespaces, its client, its swarm.

Its own loopback device carries the registry addresses, ``DIR/hosts`` is bound over ``/etc/hosts``
and ``DIR/etc-docker`` over ``/etc/docker`` (``certs.d/<host>/ca.crt``): only the daemon sees the
names, the addresses and the CA.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

from airflow_ecr.testing.lab.paths import LabPaths
from airflow_ecr.testing.lab.processes import spawn, wait_until
from airflow_ecr.testing.lab.spec import LAB_HOSTS, SWARM_ADDRESS


def start_dockerd(paths: LabPaths) -> tuple[int, bool]:
    """Start dockerd in private net + mount namespaces; returns (pid, whether /etc/docker was created).

    :param paths: the lab's layout (its TLS files must exist).
    """
    paths.hosts.write_text(
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
        "# airflow-ecr lab registries (seen by the lab's dockerd only)\n"
        + "".join(f"{address} {host}\n" for host, address in LAB_HOSTS.items())
    )
    if paths.etc_docker.exists():
        shutil.rmtree(paths.etc_docker)
    for host in LAB_HOSTS:
        certs = paths.etc_docker / "certs.d" / host
        certs.mkdir(parents=True)
        shutil.copyfile(paths.tls / "ca.crt", certs / "ca.crt")
    # Binding needs a mount point; /etc/docker normally exists (docker-registry ships
    # /etc/docker/registry). Creating it is a global change, so it is recorded and undone by `down`.
    created_etc_docker = False
    if not Path("/etc/docker").exists():
        Path("/etc/docker").mkdir(mode=0o755)
        created_etc_docker = True
    docker = paths.docker
    for sub in ("data", "exec"):
        (docker / sub).mkdir(parents=True, exist_ok=True)
    paths.socket.unlink(missing_ok=True)
    dockerd = [
        "dockerd",
        f"--data-root={docker / 'data'}",
        f"--exec-root={docker / 'exec'}",
        f"--pidfile={docker / 'dockerd.pid'}",
        f"--host=unix://{paths.socket}",
        "--iptables=false",
        "--ip-masq=false",
        "--bridge=none",
        "--storage-driver=vfs",
        # Own namespaces in case dockerd finds a system containerd (it then uses it, not its own).
        "--containerd-namespace=airflow-ecr-lab",
        "--containerd-plugins-namespace=airflow-ecr-lab-plugins",
    ]
    addresses = " && ".join(f"ip addr add {a}/32 dev lo" for a in LAB_HOSTS.values())
    script = (
        f"ip link set lo up && {addresses} && "
        f"mount --bind {shlex.quote(str(paths.hosts))} /etc/hosts && "
        f"mount --bind {shlex.quote(str(paths.etc_docker))} /etc/docker && "
        f"exec {shlex.join(dockerd)}"
    )
    log = docker / "dockerd.log"
    argv = ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", script]
    pid = spawn(paths, "dockerd", argv, log)
    wait_until("dockerd", lambda: docker_ping(paths.socket), pid, str(paths.root), log, 60)
    return pid, created_etc_docker


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
    """Make the daemon a single-node swarm manager, unless it is one already.

    :param paths: the lab's layout.
    """
    client = docker_client(paths.socket, timeout=60)
    try:
        if client.info().get("Swarm", {}).get("LocalNodeState") != "active":
            # The namespace's own loopback: nothing outside the lab can reach the manager.
            client.swarm.init(advertise_addr=SWARM_ADDRESS, listen_addr=f"{SWARM_ADDRESS}:2377")
    finally:
        client.close()
