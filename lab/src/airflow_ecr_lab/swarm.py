"""The lab's multi-node swarm (``up --swarm``): the lab's dockerd as manager, plus worker engines.

Each worker (:data:`~airflow_ecr_lab.spec.LAB_WORKERS`) is a dockerd of its own in new
network, mount and UTS namespaces (its host name is its node name), with a fresh data root at each
start: it has neither the test images nor any credentials. A veth pair links its namespace to the
manager's, with addresses from the lab's private range only: the worker has ``<its address>/32``
and routes to the manager (:data:`~airflow_ecr_lab.spec.SWARM_ADDRESS`) and to the
registries (:data:`~airflow_ecr_lab.spec.REGISTRY_NETWORK`), which live on the manager
namespace's loopback; nothing is added to the host's namespace. Like the manager, it sees the lab's
``hosts`` and ``etc-docker`` (the registry names and the CA) bound over ``/etc/hosts`` and
``/etc/docker``. Each node carries the label ``airflow-ecr-lab.node=<name>`` (``manager`` for the
manager), so that a service can be placed on one node.
"""

from __future__ import annotations

import os
import subprocess
import time
from functools import partial
from pathlib import Path
from typing import Any

from airflow_ecr_lab.dockerd import docker_client, docker_ping, spawn_engine, swarm_init
from airflow_ecr_lab.messages import LabError
from airflow_ecr_lab.paths import LabPaths, read_json
from airflow_ecr_lab.processes import alive, stop_pid, wait_until
from airflow_ecr_lab.spec import LAB_WORKERS, NODE_LABEL, REGISTRY_NETWORK, SWARM_ADDRESS, LabNode

MANAGER = "manager"
WORKER_NETWORK = "198.18.1.0/24"  # the manager's and the workers' addresses
READY_TIMEOUT = 60.0


def node_dir(paths: LabPaths, node: LabNode) -> Path:
    """A worker's directory: ``DIR/<name>`` (data root ``data``, exec root ``x``, ``docker.sock``, log).

    :param paths: the lab's layout.
    :param node: the worker.
    """
    return paths.root / node.name


def node_socket(paths: LabPaths, node: LabNode) -> Path:
    """A worker's API socket (tests use it to see what the node has, never to schedule on it).

    :param paths: the lab's layout.
    :param node: the worker.
    """
    return node_dir(paths, node) / "docker.sock"


def exec_root(paths: LabPaths, node: LabNode) -> Path:
    # Short: containerd's socket sits under it and unix socket paths are limited (paths.MAX_SOCKET_PATH).
    return node_dir(paths, node) / "x"


def spawn_workers(paths: LabPaths) -> dict[str, int]:
    """Spawn every worker's dockerd (fresh data roots), without waiting; ``{pid record: pid}``.

    :param paths: the lab's layout (its ``hosts`` and ``etc-docker`` must exist).
    """
    pids = {}
    recorded = read_json(paths.pids)
    for node in LAB_WORKERS:
        root = node_dir(paths, node)
        stop_pid(recorded.get(f"node-{node.name}", -1), str(paths.root))  # one left by a failed start
        if root.exists():
            _remove_tree(root)  # no image, no swarm state, no credentials left from a previous run
        pids[f"node-{node.name}"] = spawn_engine(
            paths,
            f"node-{node.name}",
            root,
            node_socket(paths, node),
            f"airflow-ecr-lab-{node.name}",
            "",
            hostname=node.name,
            exec_root=exec_root(paths, node),
        )
    return pids


def _remove_tree(root: Path) -> None:
    # vfs layers hold read-only directories; `rm -rf` is what removes them without chmod walks.
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)
    if root.exists():
        raise LabError(f"cannot remove {root} (a process of an earlier lab still uses it?)")


def link(manager_pid: int, worker_pid: int, node: LabNode, routes: bool = True) -> None:
    """Link a worker's network namespace to the manager's with a veth pair, addresses and routes.

    Idempotent on the manager's side (a stale device of the same name is replaced), so it also
    re-links workers after the manager's namespace was recreated (:func:`restart_dockerd`).

    :param manager_pid: the manager's dockerd (its network namespace).
    :param worker_pid: the worker's dockerd (its network namespace).
    :param node: the worker.
    :param routes: also route the worker to the registries (False: a node that cannot reach them).
    """
    host_ns = os.stat("/proc/self/ns/net").st_ino
    for pid in (manager_pid, worker_pid):
        # A process that has not entered its namespace yet would put the device in the host's.
        if os.stat(f"/proc/{pid}/ns/net").st_ino == host_ns:
            raise LabError(f"pid {pid} is not in a network namespace of its own: refusing to add links to the host's")
    in_namespace(
        manager_pid,
        f"ip link del {node.link} 2>/dev/null; "
        f"ip link add {node.link} type veth peer name eth0 netns {worker_pid} && ip link set {node.link} up && "
        f"ip route replace {node.address}/32 dev {node.link} src {SWARM_ADDRESS} && "
        # Workers gossip with each other (port 7946) through the manager's namespace (this one only).
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
    )
    in_namespace(
        worker_pid,
        f"ip addr add {node.address}/32 dev eth0 && ip link set eth0 up && "
        f"ip route add {SWARM_ADDRESS}/32 dev eth0 src {node.address} && "
        f"ip route add {WORKER_NETWORK} via {SWARM_ADDRESS} dev eth0 src {node.address}"
        + (f" && {registry_route(node, 'add')}" if routes else ""),
    )


def registry_route(node: LabNode, verb: str) -> str:
    """The ``ip route`` command adding or deleting a worker's route to the registries.

    :param node: the worker.
    :param verb: ``add`` or ``del``.
    """
    return f"ip route {verb} {REGISTRY_NETWORK} dev eth0 src {node.address}"


def in_namespace(pid: int, script: str) -> None:
    """Run a shell ``script`` in ``pid``'s network namespace; LabError with its output if it fails.

    :param pid: a process in the namespace.
    :param script: ``ip`` commands.
    """
    argv = ["nsenter", f"--net=/proc/{pid}/ns/net", "--", "sh", "-c", script]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise LabError(f"`{script}` failed in the namespace of pid {pid}: {(result.stderr or result.stdout).strip()}")


def join_workers(paths: LabPaths, manager_pid: int, worker_pids: dict[str, int]) -> list[dict[str, Any]]:
    """Init the manager's swarm, wait for each spawned worker, link and join it; the ``nodes`` of lab.json.

    :param paths: the lab's layout.
    :param manager_pid: the manager's dockerd.
    :param worker_pids: ``{pid record: pid}`` as :func:`spawn_workers` returned.
    """
    swarm_init(paths)
    manager = docker_client(paths.socket, timeout=60)
    try:
        own_id = manager.info()["Swarm"]["NodeID"]
        for stale in manager.api.nodes():  # workers of a swarm left in the data root by a crashed lab
            if stale["ID"] != own_id and stale["Status"]["State"] == "down":
                manager.api.remove_node(stale["ID"], force=True)
        manager.swarm.reload()
        token = manager.swarm.attrs["JoinTokens"]["Worker"]  # a swarm secret: API only, never argv or logs
        for node in LAB_WORKERS:
            pid = worker_pids[f"node-{node.name}"]
            socket_path = node_socket(paths, node)
            log = node_dir(paths, node) / "dockerd.log"
            wait_until(f"dockerd of {node.name}", partial(docker_ping, socket_path), pid, str(paths.root), log, 60)
            link(manager_pid, pid, node)
            worker = docker_client(socket_path, timeout=60)
            try:
                if worker.info().get("Swarm", {}).get("LocalNodeState") != "active":
                    worker.swarm.join(
                        remote_addrs=[f"{SWARM_ADDRESS}:2377"],
                        join_token=token,
                        listen_addr=f"{node.address}:2377",
                        advertise_addr=node.address,
                    )
            finally:
                worker.close()
        return _label_nodes(paths, manager)
    finally:
        manager.close()


def _label_nodes(paths: LabPaths, manager: Any) -> list[dict[str, Any]]:
    own_id = manager.info()["Swarm"]["NodeID"]
    by_name: dict[str, dict[str, Any]] = {}
    for node in manager.nodes.list():
        name = MANAGER if node.id == own_id else node.attrs["Description"]["Hostname"]
        spec = dict(node.attrs["Spec"])
        if spec.get("Labels", {}).get(NODE_LABEL) != name:
            spec["Labels"] = {**spec.get("Labels", {}), NODE_LABEL: name}
            node.update(spec)
        by_name[name] = {"node_id": node.id, "hostname": node.attrs["Description"]["Hostname"]}
    missing = [n.name for n in LAB_WORKERS if n.name not in by_name]
    if missing:
        raise LabError(f"the swarm has no node {', '.join(missing)} after joining it")
    nodes = [{"name": MANAGER, "role": "manager", "address": SWARM_ADDRESS, "docker_host": f"unix://{paths.socket}",
              "log": str(paths.docker / "dockerd.log"), **by_name[MANAGER]}]  # fmt: skip
    for worker in LAB_WORKERS:
        entry: dict[str, Any] = {"name": worker.name, "role": "worker", "address": worker.address}
        entry["log"] = str(node_dir(paths, worker) / "dockerd.log")  # where a node says why it could not pull
        nodes.append({**entry, "docker_host": f"unix://{node_socket(paths, worker)}", **by_name[worker.name]})
    return nodes


def wait_ready(paths: LabPaths, timeout: float = READY_TIMEOUT) -> None:
    """Wait until the manager sees every worker ``ready``; LabError naming those that are not.

    :param paths: the lab's layout.
    :param timeout: seconds to wait.
    """
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = node_states(paths)
        if all(states.get(n.name) == "ready" for n in LAB_WORKERS):
            return
        time.sleep(0.2)
    raise LabError(f"swarm workers not ready after {timeout:.0f} s: {states}")


def node_states(paths: LabPaths) -> dict[str, str]:
    """``{node name: state}`` as the manager sees them (``ready``, ``down``, ...); ``{}`` if it cannot say.

    :param paths: the lab's layout.
    """
    try:
        client = docker_client(paths.socket, timeout=10)
        try:
            own_id = client.info()["Swarm"]["NodeID"]
            return {
                MANAGER if n["ID"] == own_id else n["Description"]["Hostname"]: n["Status"]["State"]
                for n in client.api.nodes()
            }
        finally:
            client.close()
    except Exception:  # not a manager, not up: nothing ready
        return {}


def worker(info: dict[str, Any], name: str) -> LabNode:
    """The worker ``name`` of a lab with a swarm; LabError naming the workers otherwise.

    :param info: the lab description (``lab.json``).
    :param name: a worker's name (``worker-1``).
    """
    if not info.get("nodes"):
        raise LabError("this lab has no swarm workers: start it with `up --swarm`")
    for node in LAB_WORKERS:
        if node.name == name:
            return node
    raise LabError(f"no swarm worker {name!r}: use one of {', '.join(n.name for n in LAB_WORKERS)}")


def relink_workers(paths: LabPaths, info: dict[str, Any], manager_pid: int) -> None:
    """After the manager's namespace was recreated: link every running worker again, wait until ready.

    :param paths: the lab's layout.
    :param info: the lab description (``lab.json``).
    :param manager_pid: the new manager dockerd.
    """
    if not info.get("nodes"):
        return
    for node in LAB_WORKERS:
        pid = info["pids"].get(f"node-{node.name}", -1)
        if alive(pid, str(paths.root)):
            link(manager_pid, pid, node)
    wait_ready(paths)
