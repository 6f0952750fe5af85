"""
One REAL Kubernetes node for :mod:`helpers.kube`'s control plane: kube-scheduler and a kubelet 1.20
(dockershim) on the lab's Docker engine, built from the same Debian source as the servers.

The kubelet pulls each pod's images itself, with the pod's ``imagePullSecrets`` read through the API
server, from the lab's registries (which accept only a live token), and reports the pod's status and
``imageID`` as on any cluster. Three things differ from a production node, each for this machine:

- the pod sandbox image is a **pause stand-in** (the lab's busybox, its shell waiting for SIGTERM),
  built into the lab's engine, as the lab reaches no public registry;
- no network plugin: pods share the engine's network namespace setup (``--bridge=none``);
- where this machine cannot lower a process's ``oom_score_adj`` (no ``CAP_SYS_RESOURCE``: dockershim
  gives every pod sandbox -998, which runc then fails to set), the lab's engine runs containers
  through a test-only runtime shim that raises a negative value to 0 before calling runc. It is put
  in the engine's ``daemon.json`` for the node's lifetime (reloaded with SIGHUP); after it the engine
  is given runc back, checked, as every later test's containers need.

The kubelet runs in its own mount namespace, so the mounts it makes go with it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from airflow_ecr_lab.paths import LabPaths
from airflow_ecr_lab.processes import stop_process
from helpers.kube import Cluster, binaries
from helpers.processes import free_port

NODE = "airflow-ecr-node"
PAUSE_IMAGE = "airflow-ecr/pause-standin:1"
_PAUSE_DOCKERFILE = b"""FROM lab/busybox:1
ENTRYPOINT ["sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 1; done"]
"""
_RUNTIME = "oom-clamp"
_RUNTIME_SHIM = """#!/bin/sh
# Test-only OCI runtime shim (tests/helpers/kube_node.py): raise a negative oom_score_adj to 0,
# which this machine cannot set, then run runc.
prev=""
for arg in "$@"; do
  if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then
    python3 -c '
import json, sys
path = sys.argv[1] + "/config.json"
with open(path) as f:
    config = json.load(f)
process = config.get("process") or {}
if process.get("oomScoreAdj", 0) < 0:
    process["oomScoreAdj"] = 0
    with open(path, "w") as f:
        json.dump(config, f)
' "$arg"
  fi
  prev="$arg"
done
exec runc "$@"
"""


# Kubelet 1.20's default, watch-based Secret manager can answer "not registered" for a pod's pull
# secret in the instant after the pod is added (a kubelet race, whatever made the Secret), so it
# pulls without it; KubernetesPodOperator then fails fast on ErrImagePull (seen here in one run of
# four). "Get" reads each Secret from the API server when it is needed.
_KUBELET_CONFIG = """apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
configMapAndSecretChangeDetectionStrategy: Get
"""


@dataclass
class Node:
    """
    :param name: the node's name.
    :param kubelet_log: the kubelet's log file.
    """

    name: str
    kubelet_log: Path


def can_lower_oom_score() -> bool:
    """Whether a process here may set a negative ``oom_score_adj`` (what dockershim asks of runc)."""
    probe = subprocess.run(["sh", "-c", "echo -1 > /proc/self/oom_score_adj"], capture_output=True)
    return probe.returncode == 0


def _build_pause_standin(client: docker.APIClient) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(_PAUSE_DOCKERFILE)
        tar.addfile(info, io.BytesIO(_PAUSE_DOCKERFILE))
    context.seek(0)
    for _ in client.build(fileobj=context, custom_context=True, tag=PAUSE_IMAGE, rm=True, decode=True):
        pass
    client.inspect_image(PAUSE_IMAGE)  # raises if the build failed


@contextlib.contextmanager
def _engine_runtime_shim(lab: dict[str, Any], client: docker.APIClient, directory: Path) -> Iterator[None]:
    """The lab engine with the oom-score shim as its default runtime, while the block runs; after it,
    runc again and the shim unregistered (checked), as the next test's containers need."""
    paths = LabPaths.of(Path(lab["dir"]))
    config = paths.etc_docker / "daemon.json"
    if config.exists():
        raise AssertionError(f"{config} exists: the lab's engine has a configuration this helper would overwrite")
    shim = directory / "runc-oom-clamp"
    shim.write_text(_RUNTIME_SHIM)
    shim.chmod(0o700)
    dockerd = int((paths.docker / "dockerd.pid").read_text().strip())
    _reload_runtimes(client, dockerd, config, {_RUNTIME: {"path": str(shim)}}, _RUNTIME)
    try:
        yield
    finally:
        # Deleting daemon.json is not enough: a reload keeps every option the file no longer sets.
        _reload_runtimes(client, dockerd, config, {}, "runc")
        config.unlink()


def _reload_runtimes(
    client: docker.APIClient, dockerd: int, config: Path, runtimes: dict[str, Any], default: str, timeout: float = 10
) -> None:
    """Give the engine ``runtimes`` and ``default`` through its daemon.json and SIGHUP; wait until it
    reports them."""
    config.write_text(json.dumps({"runtimes": runtimes, "default-runtime": default}))
    os.kill(dockerd, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while True:  # the engine reloads its configuration asynchronously
        info = client.info()
        registered = set(info.get("Runtimes") or {})
        if info.get("DefaultRuntime") == default and (_RUNTIME in registered) == (_RUNTIME in runtimes):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the lab's engine did not take default runtime {default!r}: {info.get('Runtimes')}")
        time.sleep(0.1)


@contextlib.contextmanager
def real_node(cluster: Cluster, lab: dict[str, Any], directory: Path, timeout: float = 90.0) -> Iterator[Node]:
    """
    kube-scheduler and a kubelet for ``cluster`` on the lab's engine until the block ends; then both
    are stopped (by pid), the node object and its containers removed and the engine restored.

    :param cluster: the control plane.
    :param lab: the lab's ``lab.json``.
    :param directory: a private directory for the node's state and logs.
    :param timeout: seconds to wait for the node to be Ready.
    """
    bin_dir = binaries()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    client = docker.APIClient(base_url=lab["docker_host"])
    _build_pause_standin(client)
    admin = cluster.kubeconfig("node-admin", cluster.admin_token, "default")
    config = directory / "kubelet.yaml"
    config.write_text(_KUBELET_CONFIG)
    processes: list[subprocess.Popen[Any]] = []
    logs = {name: (directory / f"{name}.log").open("wb") for name in ("scheduler", "kubelet")}
    shim = contextlib.nullcontext() if can_lower_oom_score() else _engine_runtime_shim(lab, client, directory)
    try:
        with shim:
            processes.append(subprocess.Popen(
                [str(bin_dir / "kube-scheduler"), f"--kubeconfig={admin}", "--leader-elect=false", "--port=0",
                 "--secure-port=0", "--bind-address=127.0.0.1"],
                stdout=logs["scheduler"], stderr=subprocess.STDOUT,
            ))  # fmt: skip
            processes.append(subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", str(bin_dir / "kubelet"),
                 f"--config={config}", f"--kubeconfig={admin}", f"--root-dir={directory / 'kubelet'}",
                 f"--cert-dir={directory / 'certs'}",
                 "--container-runtime=docker", f"--docker-endpoint={lab['docker_host']}",
                 f"--pod-infra-container-image={PAUSE_IMAGE}", f"--hostname-override={NODE}",
                 "--node-ip=127.0.0.1", "--address=127.0.0.1", f"--port={free_port()}", "--read-only-port=0",
                 "--healthz-port=0", "--anonymous-auth=false", "--network-plugin=", "--cgroup-driver=cgroupfs",
                 # A node of the tests on a shared machine: no QoS cgroups, no evictions, no image GC
                 # (the lab's images belong to every test), no iptables chains.
                 "--fail-swap-on=false", "--cgroups-per-qos=false", "--enforce-node-allocatable=",
                 "--eviction-hard=", "--image-gc-high-threshold=100", "--make-iptables-util-chains=false"],
                stdout=logs["kubelet"], stderr=subprocess.STDOUT,
            ))  # fmt: skip
            _wait_ready(cluster, processes, directory, timeout)
            yield Node(NODE, directory / "kubelet.log")
    finally:
        for proc in reversed(processes):
            stop_process(proc)
        for handle in logs.values():
            handle.close()
        with contextlib.suppress(Exception):
            cluster.request("DELETE", f"/api/v1/nodes/{NODE}")
        for container in client.containers(all=True, filters={"label": "io.kubernetes.docker.type"}):
            client.remove_container(container["Id"], force=True)


def _wait_ready(cluster: Cluster, processes: list[subprocess.Popen[Any]], directory: Path, timeout: float) -> None:
    """Wait for the node to be Ready, then lift the not-ready taint that the node lifecycle
    controller (not run by these tests) would lift."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in processes:
            if proc.poll() is not None:
                tail = (directory / "kubelet.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(Exception):
            node = cluster.request("GET", f"/api/v1/nodes/{NODE}")
            ready = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}.get("Ready")
            if ready == "True":
                cluster.request("PATCH", f"/api/v1/nodes/{NODE}", {"spec": {"taints": None}})
                return
        time.sleep(0.5)
    tail = (directory / "kubelet.log").read_text(errors="replace")[-3000:]
    raise AssertionError(f"node {NODE} was not Ready within {timeout} s:\n{tail}")
