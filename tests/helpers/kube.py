"""
A real Kubernetes control plane for the tests: etcd, kube-apiserver (RBAC, loopback only) and
kube-controller-manager (service accounts, garbage collection), built from Debian's source by
``scripts/k8s-binaries.sh``.

There is no scheduler and no kubelet: pods stay Pending until :mod:`helpers.kubelet_standin` (a
stand-in, named as such) plays the kubelet's part of a pull.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_ecr.kubernetes.pull_secrets import ROLE_RULES
from airflow_ecr_lab.processes import stop_process
from helpers.processes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
BINARIES_SCRIPT = ROOT / "scripts" / "k8s-binaries.sh"


def binaries() -> Path:
    """The directory of the built (or cached) Kubernetes server binaries."""
    out = subprocess.run(["bash", str(BINARIES_SCRIPT)], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass
class Cluster:
    """
    A running control plane.

    :param server: the API server's URL (``https://127.0.0.1:PORT``).
    :param ca_file: the API server's self-signed serving certificate (what clients trust).
    :param admin_token: a bearer token in ``system:masters``.
    :param directory: where its state, logs and kubeconfigs live.
    """

    server: str
    ca_file: Path
    admin_token: str
    directory: Path
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """One API request (JSON in, JSON out), as the admin unless ``token`` is given.

        :raises requests.HTTPError: for an answer other than 2xx.
        """
        content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        headers = {"Authorization": f"Bearer {token or self.admin_token}", "Content-Type": content_type}
        data = json.dumps(body) if body is not None else None
        with requests.Session() as session:
            session.trust_env = False  # the loopback API server, whatever proxy a test has set for registries
            response = session.request(
                method, self.server + path, data=data, headers=headers, verify=str(self.ca_file), timeout=30
            )
        response.raise_for_status()
        if not response.headers.get("Content-Type", "").startswith("application/json"):
            return response.text  # /readyz answers "ok"
        return response.json()

    def kubeconfig(self, name: str, token: str, namespace: str) -> Path:
        """A kubeconfig file (0600) for ``token``, as Airflow's kubernetes connection reads it."""
        path = self.directory / f"{name}.kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "lab", "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "lab", "user": name, "namespace": namespace}}],
            "current-context": name,
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(config, handle)
        return path

    def namespace_with_role(self, namespace: str, account: str = "airflow") -> str:
        """
        ``namespace`` with a ServiceAccount bound to a Role of exactly :data:`ROLE_RULES`, once the
        controller manager has made the namespace usable; returns a token of that ServiceAccount.
        """
        self.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        base = f"/api/v1/namespaces/{namespace}"
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
        self.request("POST", f"{base}/serviceaccounts", {"metadata": {"name": account}})
        self.request("POST", f"{rbac}/roles", {"metadata": {"name": "airflow-ecr-pods"}, "rules": ROLE_RULES})
        binding = {
            "metadata": {"name": "airflow-ecr-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "airflow-ecr-pods"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
        self.request("POST", f"{rbac}/rolebindings", binding)
        # Pods are refused until the controller manager has made the namespace's default account.
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.HTTPError):
                self.request("GET", f"{base}/serviceaccounts/default")
                break
            assert time.monotonic() < deadline, "the controller manager made no default ServiceAccount in 60 s"
            time.sleep(0.2)
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        }
        answer = self.request("POST", f"{base}/serviceaccounts/{account}/token", request)
        return str(answer["status"]["token"])


def _write_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _ready(cluster: Cluster, proc: subprocess.Popen[Any], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            cluster.request("GET", "/readyz")
            return
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"kube-apiserver exited with {proc.returncode}:\n{tail}")
        assert time.monotonic() < deadline, f"kube-apiserver was not ready within {timeout} s"
        time.sleep(0.2)


@contextlib.contextmanager
def control_plane(directory: Path) -> Iterator[Cluster]:
    """etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, stopped (by pid) on exit."""
    bin_dir = binaries()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    admin_token = secrets.token_urlsafe(32)
    tokens = directory / "tokens.csv"
    fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f'{admin_token},admin,admin,"system:masters"\n')
    sa_key = directory / "sa.key"
    _write_key(sa_key)
    certs = directory / "certs"
    certs.mkdir(mode=0o700)
    etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
    cluster = Cluster(f"https://127.0.0.1:{api_port}", certs / "apiserver.crt", admin_token, directory)
    logs = {name: open(directory / f"{name}.log", "wb") for name in ("etcd", "apiserver", "controller-manager")}  # noqa: SIM115
    try:
        etcd = subprocess.Popen(
            ["etcd", "--data-dir", str(directory / "etcd"), "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
             "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}"],
            stdout=logs["etcd"], stderr=subprocess.STDOUT,
        )  # fmt: skip
        cluster.processes.append(etcd)
        wait_for_port(etcd_port, etcd, "etcd", directory / "etcd.log")
        apiserver = subprocess.Popen(
            [str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
             "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
             "--insecure-port=0", "--endpoint-reconciler-type=none", f"--cert-dir={certs}",
             "--service-cluster-ip-range=10.96.0.0/24", "--authorization-mode=RBAC",
             f"--token-auth-file={tokens}", "--service-account-issuer=https://kubernetes.default.svc",
             f"--service-account-key-file={sa_key}", f"--service-account-signing-key-file={sa_key}",
             "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount", "--profiling=false"],
            stdout=logs["apiserver"], stderr=subprocess.STDOUT,
        )  # fmt: skip
        cluster.processes.append(apiserver)
        wait_for_port(api_port, apiserver, "kube-apiserver", directory / "apiserver.log")
        _ready(cluster, apiserver, directory / "apiserver.log")
        admin_config = cluster.kubeconfig("admin", admin_token, "default")
        manager = subprocess.Popen(
            [str(bin_dir / "kube-controller-manager"), f"--kubeconfig={admin_config}",
             "--bind-address=127.0.0.1", "--port=0", "--secure-port=0", "--leader-elect=false",
             f"--service-account-private-key-file={sa_key}", f"--root-ca-file={cluster.ca_file}",
             "--controllers=serviceaccount,serviceaccount-token,garbagecollector,namespace",
             "--use-service-account-credentials=false", "--profiling=false"],
            stdout=logs["controller-manager"], stderr=subprocess.STDOUT,
        )  # fmt: skip
        cluster.processes.append(manager)
        yield cluster
    finally:
        for proc in reversed(cluster.processes):
            stop_process(proc)
        for handle in logs.values():
            handle.close()


def dockerconfigjson(secret: dict[str, Any]) -> dict[str, Any]:
    """The decoded ``.dockerconfigjson`` of a Secret as the API returns it."""
    return json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
