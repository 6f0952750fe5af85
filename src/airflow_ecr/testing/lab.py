"""The airflow-ecr test lab: a real Docker engine pulling from real registries by real ECR names.

``python -m airflow_ecr.testing.lab up|down|status [--dir DIR] [--swarm] [--purge]`` (as root).
``python -m airflow_ecr.testing.lab setup [--install]`` prints the ``apt-get`` line of the Debian
packages the lab needs (:data:`DEBIAN_PACKAGES`), or runs it (as root) with ``--install``.

Everything lives under DIR (default: ``$AIRFLOW_ECR_LAB_DIR`` or ``/tmp/airflow-ecr-lab``):

- ``tls/``: a lab CA and one server certificate whose SANs cover every registry host name;
- the ECR API emulator (:mod:`airflow_ecr.testing.emulator`) on ``127.0.0.1:<ephemeral>``;
- ``dockerd`` in private network and mount namespaces (``unshare --net --mount``): its own
  loopback device carries the registry addresses (``198.18.0.11``, ``.12``, ``.19``: the RFC 2544
  benchmarking range), ``DIR/hosts`` is bound over ``/etc/hosts`` (the registry names) and
  ``DIR/etc-docker`` over ``/etc/docker`` (``certs.d/<host>/ca.crt``). Only the daemon sees the
  names, the addresses and the CA; nothing global changes and nothing is reachable from outside.
  Clients use ``unix://DIR/docker.sock``; containers need ``network_mode="none"`` (no bridge);
- one ``docker-registry serve`` per emulated account, inside the daemon's network namespace, on
  ``<its own address>:443`` with ECR-style basic auth (user ``AWS``, htpasswd rewritten by the
  emulator), plus one anonymous registry ``registry.lab.test``. Port 443 on a dedicated address is
  what lets image names be real ECR names without a port
  (``111111111111.dkr.ecr.eu-west-1.amazonaws.com/lab/busybox:1``);
- test images pushed to every registry (see :mod:`airflow_ecr.testing.images`);
- ``lab.json``, which describes all of it to tests.

Why not 127.0.0.x in the host's namespace: dockerd always treats registries that resolve into
127.0.0.0/8 as insecure, so it would skip certificate verification and fall back to plain HTTP
(a pull without credentials then fails with ``dial tcp 127.0.0.11:80: connection refused`` instead
of ECR's ``no basic auth credentials``). Non-loopback addresses in a private namespace keep TLS
verification real, and let several labs run side by side.

Every process is started detached and recorded in ``DIR/pids.json`` as soon as it starts, so that
``down`` stops exactly those pids (checking that each still runs a command naming DIR) even after a
crash.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_ecr.testing import images

DEFAULT_DIR = "/tmp/airflow-ecr-lab"
ENV_DIR = "AIRFLOW_ECR_LAB_DIR"
ANONYMOUS_HOST = "registry.lab.test"
ANONYMOUS_ADDRESS = "198.18.0.19"
# Inside the lab's network namespace: its own loopback, so no clash with the host or another lab.
SWARM_ADDRESS = "127.0.0.1"
BUSYBOX_IMAGE = "lab/busybox:1"
PYTHON_IMAGE = "lab/python:3.11"
# What each account registry holds: (local image, name in the registry).
ACCOUNT_IMAGES = ((BUSYBOX_IMAGE, "lab/busybox:1"), (BUSYBOX_IMAGE, "app/hello:1"))
PYTHON_ACCOUNT = "111111111111"
STOP_TIMEOUT = 20.0
# sun_path is 108 bytes; containerd's socket sits deepest: DIR/docker/exec/containerd/containerd.sock.
_MAX_SOCKET_PATH = 100
# What the lab runs from the host, and the Debian 12 package of each: the one list that `setup`
# installs and the preflight names packages from (ldd and bash come with Essential packages).
HOST_TOOLS = (
    ("dockerd", "docker.io"),
    ("docker-registry", "docker-registry"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("ip", "iproute2"),
    ("busybox", "busybox-static"),  # the test images' shell and applets
    (str(images.PYTHON_BINARY), "python3.11"),  # the python test image's interpreter
)
DEBIAN_PACKAGES = tuple(dict.fromkeys(package for _, package in HOST_TOOLS))
SETUP_COMMAND = "python -m airflow_ecr.testing.lab setup"


@dataclass(frozen=True)
class LabAccount:
    """One emulated ECR registry in the lab.

    :param account_id: the 12-digit account id.
    :param region: the region.
    :param address: the address its registry listens on (port 443, in the lab's network namespace).
    """

    account_id: str
    region: str
    address: str

    @property
    def host(self) -> str:
        """The real ECR host name of this registry."""
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"


LAB_ACCOUNTS = (
    LabAccount("111111111111", "eu-west-1", "198.18.0.11"),
    LabAccount("222222222222", "us-east-1", "198.18.0.12"),
)
LAB_HOSTS = {**{a.host: a.address for a in LAB_ACCOUNTS}, ANONYMOUS_HOST: ANONYMOUS_ADDRESS}


class LabError(RuntimeError):
    """The lab cannot start or stop; the message says why and what to do."""


def _say(component: str, text: str) -> None:
    print(f"lab: {component:<9} {text}", flush=True)


# -- layout -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Paths:
    root: Path

    @property
    def lab_json(self) -> Path:
        return self.root / "lab.json"

    @property
    def pids(self) -> Path:
        return self.root / "pids.json"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    @property
    def etc_docker(self) -> Path:
        return self.root / "etc-docker"

    @property
    def docker(self) -> Path:
        return self.root / "docker"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def emulator(self) -> Path:
        return self.root / "emulator"

    def registry(self, name: str) -> Path:
        return self.root / "registries" / name


@contextlib.contextmanager
def _locked(paths: _Paths) -> Generator[None, None, None]:
    """Serialize ``up`` and ``down`` on one lab directory (e.g. parallel pytest sessions)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with (paths.root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def default_dir() -> Path:
    """The lab directory: ``$AIRFLOW_ECR_LAB_DIR`` or ``/tmp/airflow-ecr-lab``."""
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


# -- processes ----------------------------------------------------------------------------------
# Popen objects of the processes this interpreter started, so that stopping them also reaps them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _record_pid(paths: _Paths, name: str, pid: int | None) -> None:
    pids = _read_json(paths.pids)
    if pid is None:
        pids.pop(name, None)
    else:
        pids[name] = pid
    _write_json(paths.pids, pids)


def _alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs (not a zombie) a command line containing ``marker`` (pid reuse guard)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        # Our own child: no reuse possible before it is reaped, and its cmdline reads empty while
        # it is in execve, so trust poll().
        return child.poll() is None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and marker in cmdline


def _spawn(paths: _Paths, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    with log.open("ab") as out:
        # A new session: the lab outlives the shell (or pytest) that started it.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _CHILDREN[proc.pid] = proc
    _record_pid(paths, name, proc.pid)
    return proc.pid


def _stop_pid(pid: int, marker: str, timeout: float = STOP_TIMEOUT) -> str:
    """SIGTERM ``pid``, wait, SIGKILL after ``timeout``; returns what happened."""
    if not _alive(pid, marker):
        return "not running"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, marker, timeout):
        return "stopped"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, marker, 5)
    return f"killed (no exit {timeout:.0f} s after SIGTERM)"


def _wait_gone(pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child = _CHILDREN.get(pid)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(0.1)
        if not _alive(pid, marker):
            _CHILDREN.pop(pid, None)
            return True
        time.sleep(0.1)
    return False


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n    ".join(text)


def _wait_until(what: str, check: Callable[[], bool], pid: int, marker: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not _alive(pid, marker):
            code = _CHILDREN[pid].poll() if pid in _CHILDREN else None
            raise LabError(f"{what} exited ({code}) during start-up; last lines of {log}:\n    {_log_tail(log)}")
        time.sleep(0.1)
    raise LabError(f"{what} not ready after {timeout:.0f} s; last lines of {log}:\n    {_log_tail(log)}")


# -- TLS ----------------------------------------------------------------------------------------
def _make_tls(directory: Path, hosts: dict[str, str]) -> None:
    """A lab CA and one server certificate for every registry host (EC P-256: fast to make).

    :param directory: where ``ca.crt``, ``server.crt`` and ``server.key`` go.
    :param hosts: host name -> address, all in the certificate's SANs.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airflow-ecr lab CA")])
    ca_usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "encipher_only"),
        False,
    )
    ca_usage.update(digital_signature=True, key_cert_sign=True, crl_sign=True, decipher_only=False)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(**ca_usage), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in hosts.values()]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, next(iter(hosts)))]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def write(name: str, data: bytes, mode: int) -> None:
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    pem = serialization.Encoding.PEM
    write("ca.crt", ca_cert.public_bytes(pem), 0o644)
    write("server.crt", cert.public_bytes(pem) + ca_cert.public_bytes(pem), 0o644)
    key_format = serialization.PrivateFormat.PKCS8
    write("server.key", key.private_bytes(pem, key_format, serialization.NoEncryption()), 0o600)


# Run inside the lab's network namespace (nsenter): GET /v2/ over verified TLS, print the status.
_PROBE = """
import socket, ssl, sys
address, host, ca = sys.argv[1:4]
try:
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection((address, 443), timeout=2) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(("GET /v2/ HTTP/1.0\\r\\nHost: " + host + "\\r\\n\\r\\n").encode())
            print(tls.recv(256).split(b"\\r\\n", 1)[0].split()[1].decode())
except Exception as exc:
    print("error:", exc)
"""


def _probe(netns_pid: int, address: str, host: str, ca: Path) -> str:
    """``GET https://host/v2/`` (at ``address``) from inside ``netns_pid``'s network namespace.

    Returns the HTTP status ("401", "200") or ``error: ...``; verifies the certificate with the lab CA.
    """
    argv = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", "--", sys.executable, "-I", "-c", _PROBE]
    try:
        result = subprocess.run(
            [*argv, address, host, str(ca)], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    return (result.stdout.strip() or result.stderr.strip() or f"error: exit {result.returncode}").splitlines()[-1]


# -- components ---------------------------------------------------------------------------------
def _preflight(paths: _Paths) -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (dockerd, namespaces, port 443): run it with sudo or as root")
    missing = [(tool, package) for tool, package in HOST_TOOLS if not _have_tool(tool)]
    if missing:
        tools = ", ".join(tool for tool, _ in missing)
        packages = " ".join(dict.fromkeys(package for _, package in missing))
        raise LabError(
            f"missing {tools} (Debian packages: {packages}): run `{SETUP_COMMAND} --install` as root, "
            f"or install them with `apt-get update && apt-get install -y {packages}`"
        )
    for module, extra in (
        ("docker", "apache-airflow-providers-docker"),
        ("cryptography", "airflow-ecr[testing]"),
    ):
        try:
            __import__(module)
        except ImportError as exc:
            raise LabError(f"python module {module!r} missing: pip install {extra}") from exc
    deepest = paths.docker / "exec" / "containerd" / "containerd.sock"
    if len(str(deepest)) > _MAX_SOCKET_PATH:
        raise LabError(f"lab dir {paths.root} is too long for unix sockets ({deepest}); use a shorter --dir")


def _have_tool(tool: str) -> bool:
    if tool == "busybox":
        try:
            images.find_busybox()
        except images.ImageBuildError:
            return False
        return True
    return Path(tool).is_file() if tool.startswith("/") else shutil.which(tool) is not None


def apt_command(packages: tuple[str, ...] = DEBIAN_PACKAGES) -> str:
    """The shell line that installs ``packages`` on Debian (what ``setup`` prints).

    :param packages: Debian package names (default: everything the lab needs).
    """
    return f"apt-get update && apt-get install -y --no-install-recommends {' '.join(packages)}"


def missing_packages() -> list[str]:
    """The lab's Debian packages that dpkg does not list as installed (all of them without dpkg)."""
    missing = []
    for package in DEBIAN_PACKAGES:
        try:
            status = subprocess.run(
                ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
            ).stdout
        except OSError:
            status = ""
        if status != "install ok installed":
            missing.append(package)
    return missing


def setup(install: bool = False) -> None:
    """Print the ``apt-get`` line of the lab's Debian packages; with ``install``, run it for those missing.

    :param install: install the missing packages (needs root and apt-get).
    """
    if not install:
        print(apt_command())
        missing = missing_packages()
        state = f"missing: {', '.join(missing)}" if missing else "all installed"
        print(f"lab: setup     {state} (run the line above as root, or add --install)", file=sys.stderr)
        return
    if os.geteuid() != 0:
        raise LabError(f"installing Debian packages needs root: run `{SETUP_COMMAND} --install` with sudo or as root")
    if shutil.which("apt-get") is None:
        raise LabError(f"apt-get not found: install the equivalents of {' '.join(DEBIAN_PACKAGES)} yourself")
    missing = missing_packages()
    if not missing:
        _say("setup", f"all {len(DEBIAN_PACKAGES)} Debian packages present")
        return
    _say("setup", f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        if subprocess.run(argv, env=env, check=False).returncode != 0:
            raise LabError(f"`{' '.join(argv)}` failed (see its output above)")
    _say("setup", "done")


def _start_emulator(paths: _Paths) -> tuple[int, str]:
    paths.emulator.mkdir(parents=True, exist_ok=True)
    accounts = []
    for account in LAB_ACCOUNTS:
        directory = paths.registry(account.account_id)
        directory.mkdir(parents=True, exist_ok=True)
        accounts.append(
            {
                "account_id": account.account_id,
                "region": account.region,
                "htpasswd": str(directory / "htpasswd"),
            }
        )
    config = {
        "accounts": accounts,
        "default_account": LAB_ACCOUNTS[0].account_id,
        "token_ttl": 43200,
        "rotate_fraction": 0.5,
        "port": 0,
    }
    config_file = paths.emulator / "config.json"
    _write_json(config_file, config)
    port_file = paths.emulator / "port"
    port_file.unlink(missing_ok=True)
    # Run this very package even when it is not installed (python -m from a source tree).
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    log = paths.emulator / "emulator.log"
    argv = [sys.executable, "-m", "airflow_ecr.testing.emulator", "--config", str(config_file)]
    pid = _spawn(paths, "emulator", [*argv, "--port-file", str(port_file)], log, env)
    _wait_until("the ECR emulator", port_file.exists, pid, str(paths.root), log, 20)
    return pid, f"http://127.0.0.1:{int(port_file.read_text())}"


def _start_dockerd(paths: _Paths) -> tuple[int, bool]:
    """Start dockerd in private net + mount namespaces; returns (pid, whether /etc/docker was created)."""
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
    pid = _spawn(paths, "dockerd", argv, log)
    _wait_until("dockerd", lambda: _docker_ping(paths.socket), pid, str(paths.root), log, 60)
    return pid, created_etc_docker


def _start_registry(paths: _Paths, netns_pid: int, name: str, host: str, address: str, auth: bool) -> int:
    directory = paths.registry(name)
    (directory / "storage").mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(directory / "storage")}, "delete": {"enabled": True}},
        "http": {
            "addr": f"{address}:443",
            # The upload-state HMAC secret: lives in the config file, never in argv.
            "secret": secrets.token_hex(16),
            "tls": {"certificate": str(paths.tls / "server.crt"), "key": str(paths.tls / "server.key")},
        },
    }
    if auth:
        config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(directory / "htpasswd")}}
    # YAML is a superset of JSON: no YAML writer needed.
    config_file = directory / "config.yml"
    fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2)
    log = directory / "registry.log"
    argv = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", "--", "docker-registry", "serve", str(config_file)]
    pid = _spawn(paths, f"registry-{name}", argv, log)
    expected = "401" if auth else "200"
    ca = paths.tls / "ca.crt"

    def ready() -> bool:
        return _probe(pid, address, host, ca) == expected

    _wait_until(f"registry {host}", ready, pid, str(paths.root), log, 20)
    return pid


def _docker_client(socket_path: Path, timeout: int = 120) -> Any:
    import docker

    return docker.DockerClient(base_url=f"unix://{socket_path}", timeout=timeout)


def _docker_ping(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        client = _docker_client(socket_path, timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure here only means "not ready yet"
        return False


def _emulator_get(url: str, path: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(f"{url}/_emulator/{path}", timeout=timeout) as answer:  # noqa: S310 (loopback URL)
        return json.loads(answer.read())


def _push(client: Any, local: str, target: str, auth: dict[str, str] | None) -> None:
    repository, tag = target.rsplit(":", 1)
    client.api.tag(local, repository, tag)
    for event in client.api.push(repository, tag=tag, auth_config=auth, stream=True, decode=True):
        if "error" in event:
            raise LabError(f"pushing {target} failed: {event['error']}")
    # Tests must really pull: only the lab's local names stay in the daemon.
    client.api.remove_image(target, noprune=True)


def _load_images(paths: _Paths, emulator_url: str) -> dict[str, list[str]]:
    """Import the test images and push them everywhere; returns the refs per registry host."""
    from airflow_ecr.testing import images

    client = _docker_client(paths.socket)
    try:
        for ref, build, command in (
            (BUSYBOX_IMAGE, images.busybox_rootfs, '["sh"]'),
            (PYTHON_IMAGE, images.python_rootfs, '["python3"]'),
        ):
            repository, tag = ref.rsplit(":", 1)
            if not client.images.list(name=ref):  # kept across restarts: import once per data root
                changes = [*images.IMAGE_ENV, f"CMD {command}"]
                client.api.import_image_from_data(build(), repository=repository, tag=tag, changes=changes)
        # The decorator runs `bash -cx '... python3 ...'` with no network: prove that works here.
        output = client.containers.run(
            PYTHON_IMAGE,
            ["bash", "-c", 'python3 -c "import json, pickle, base64, sys; print(sys.version_info[:2])"'],
            network_mode="none",
            remove=True,
        )
        if b"(3, 11)" not in output:
            raise LabError(f"{PYTHON_IMAGE} does not run python3: {output!r}")

        pushed: dict[str, list[str]] = {}
        for account in LAB_ACCOUNTS:
            password = _emulator_get(emulator_url, f"password/{account.account_id}")["password"]
            auth = {"username": "AWS", "password": password, "serveraddress": account.host}
            contents = list(ACCOUNT_IMAGES)
            if account.account_id == PYTHON_ACCOUNT:
                contents.append((PYTHON_IMAGE, PYTHON_IMAGE))
            for local, name in contents:
                _push(client, local, f"{account.host}/{name}", auth)
            pushed[account.host] = [f"{account.host}/{name}" for _, name in contents]
        anonymous = f"{ANONYMOUS_HOST}/{BUSYBOX_IMAGE}"
        _push(client, BUSYBOX_IMAGE, anonymous, None)
        pushed[ANONYMOUS_HOST] = [anonymous]
        return pushed
    finally:
        client.close()


def _swarm_state(paths: _Paths) -> str:
    client = _docker_client(paths.socket, timeout=10)
    try:
        return str(client.info().get("Swarm", {}).get("LocalNodeState", "inactive"))
    finally:
        client.close()


def _swarm_init(paths: _Paths) -> None:
    client = _docker_client(paths.socket, timeout=60)
    try:
        if client.info().get("Swarm", {}).get("LocalNodeState") != "active":
            # The namespace's own loopback: nothing outside the lab can reach the manager.
            client.swarm.init(advertise_addr=SWARM_ADDRESS, listen_addr=f"{SWARM_ADDRESS}:2377")
    finally:
        client.close()


# -- health -------------------------------------------------------------------------------------
def _health(paths: _Paths) -> Iterator[tuple[str, bool, str]]:
    """(component, healthy, detail) for every component of the lab described in lab.json."""
    info = _read_json(paths.lab_json)
    if not info:
        yield "lab.json", False, f"missing or unreadable: {paths.lab_json}"
        return
    marker = str(paths.root)
    pids = info.get("pids", {})
    url = str(info.get("emulator_url", ""))
    try:
        ok = bool(_emulator_get(url, "health", timeout=2).get("ok"))
    except (OSError, ValueError):
        ok = False
    yield "emulator", ok and _alive(pids.get("emulator", -1), marker), f"{url} (pid {pids.get('emulator')})"
    ca = paths.tls / "ca.crt"
    registries = [(a["account_id"], a["host"], a["address"], "401") for a in info.get("accounts", [])]
    anonymous = info.get("anonymous_registry", {})
    registries.append(("anonymous", anonymous.get("host", ""), anonymous.get("address", ""), "200"))
    for name, host, address, expected in registries:
        pid = pids.get(f"registry-{name}", -1)
        answer = _probe(pid, address, host, ca) if _alive(pid, marker) else "not running"
        yield "registry", answer == expected, f"{host} -> {address}:443 (pid {pid}): GET /v2/ {answer}"
    pid = pids.get("dockerd", -1)
    ok = _alive(pid, marker) and _docker_ping(paths.socket)
    yield "dockerd", ok, f"{info.get('docker_host')} (pid {pid})"
    if ok and info.get("swarm"):
        state = _swarm_state(paths)
        yield "swarm", state == "active", state


def status(directory: Path | None = None) -> bool:
    """Print the health of every component; returns True when all are healthy.

    :param directory: the lab directory (default: :func:`default_dir`).
    """
    healthy = True
    for component, ok, detail in _health(_Paths((directory or default_dir()).resolve())):
        _say(component, f"{'ok  ' if ok else 'DOWN'} {detail}")
        healthy = healthy and ok
    return healthy


def is_up(directory: Path | None = None) -> bool:
    """True when a lab runs at ``directory`` and every component is healthy.

    :param directory: the lab directory (default: :func:`default_dir`).
    """
    return all(ok for _, ok, _ in _health(_Paths((directory or default_dir()).resolve())))


def load(directory: Path | None = None) -> dict[str, Any]:
    """The lab description (``lab.json``) of a lab that is up.

    :param directory: the lab directory (default: :func:`default_dir`).
    """
    paths = _Paths((directory or default_dir()).resolve())
    info = _read_json(paths.lab_json)
    if not info:
        raise LabError(f"no lab at {paths.root}: python -m airflow_ecr.testing.lab up --dir {paths.root}")
    return info


# -- up / down ----------------------------------------------------------------------------------
def up(directory: Path | None = None, swarm: bool = False) -> dict[str, Any]:
    """Start the lab (or keep a healthy one); returns the contents of ``lab.json``.

    :param directory: the lab directory (default: :func:`default_dir`).
    :param swarm: also make the daemon a single-node swarm manager.
    """
    started = time.monotonic()
    paths = _Paths((directory or default_dir()).resolve())
    _preflight(paths)
    with _locked(paths):
        return _up_locked(paths, swarm, started)


def _up_locked(paths: _Paths, swarm: bool, started: float) -> dict[str, Any]:
    if paths.lab_json.exists() or _read_json(paths.pids):
        if is_up(paths.root):
            info = load(paths.root)
            if swarm and not info.get("swarm"):
                _swarm_init(paths)
                info["swarm"] = True
                _write_json(paths.lab_json, info)
            _say("lab", f"already up at {paths.root} (swarm: {info.get('swarm')})")
            return info
        _say("lab", f"stale lab at {paths.root}: cleaning it first")
        _down_locked(paths, purge=False, quiet=False)
    try:
        return _up(paths, swarm, started)
    except BaseException:
        # Leave nothing running behind a failed start (the files stay, for the logs).
        with contextlib.suppress(Exception):
            _down_locked(paths, purge=False, quiet=True)
        raise


def _up(paths: _Paths, swarm: bool, started: float) -> dict[str, Any]:
    _make_tls(paths.tls, LAB_HOSTS)
    _say("tls", f"CA {paths.tls / 'ca.crt'}; server certificate for {', '.join(LAB_HOSTS)}")
    emulator_pid, emulator_url = _start_emulator(paths)
    _say("emulator", f"{emulator_url} (pid {emulator_pid})")
    dockerd_pid, created_etc_docker = _start_dockerd(paths)
    _say("dockerd", f"unix://{paths.socket} (pid {dockerd_pid}, private net + mount namespaces, vfs)")
    pids: dict[str, int] = {"emulator": emulator_pid, "dockerd": dockerd_pid}
    for account in LAB_ACCOUNTS:
        pid = _start_registry(paths, dockerd_pid, account.account_id, account.host, account.address, auth=True)
        pids[f"registry-{account.account_id}"] = pid
        _say("registry", f"{account.host} -> {account.address}:443, basic auth AWS (pid {pid})")
    pid = _start_registry(paths, dockerd_pid, "anonymous", ANONYMOUS_HOST, ANONYMOUS_ADDRESS, auth=False)
    pids["registry-anonymous"] = pid
    _say("registry", f"{ANONYMOUS_HOST} -> {ANONYMOUS_ADDRESS}:443, anonymous (pid {pid})")

    pushed = _load_images(paths, emulator_url)
    _say("images", f"{BUSYBOX_IMAGE}, {PYTHON_IMAGE} pushed as {sum(len(v) for v in pushed.values())} refs")
    if swarm:
        _swarm_init(paths)
        _say("swarm", f"active, manager on {SWARM_ADDRESS}:2377 (lab namespace)")
    elif _swarm_state(paths) == "active":
        _say("swarm", "active (left over in the data root; kept)")
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
    _write_json(paths.lab_json, info)
    _say("lab", f"up in {time.monotonic() - started:.1f} s; {paths.lab_json}")
    return info


def down(directory: Path | None = None, purge: bool = False, quiet: bool = False) -> None:
    """Stop every process the lab started (by recorded pid); remove DIR only with ``purge``.

    :param directory: the lab directory (default: :func:`default_dir`).
    :param purge: also delete the lab directory (images, registry storage, logs).
    :param quiet: print nothing.
    """
    paths = _Paths((directory or default_dir()).resolve())
    if not paths.root.exists():
        if not quiet:
            _say("lab", f"nothing at {paths.root}")
        return
    with _locked(paths):
        _down_locked(paths, purge, quiet)


def _down_locked(paths: _Paths, purge: bool, quiet: bool) -> None:
    marker = str(paths.root)
    info = _read_json(paths.lab_json)
    pids: dict[str, int] = {**info.get("pids", {}), **_read_json(paths.pids)}

    def say(component: str, text: str) -> None:
        if not quiet:
            _say(component, text)

    dockerd_pid = pids.get("dockerd")
    if dockerd_pid and _alive(dockerd_pid, marker) and _docker_ping(paths.socket):
        # Leave the swarm so that a later `up` does not restart the old swarm from the data root.
        try:
            if _swarm_state(paths) == "active":
                client = _docker_client(paths.socket, timeout=30)
                try:
                    client.swarm.leave(force=True)
                finally:
                    client.close()
                say("swarm", "left")
        except Exception as exc:  # best effort: stopping the daemon matters more
            say("swarm", f"could not leave: {exc}")
    # The daemon first (it is the registries' client), the emulator last.
    for name in sorted(pids, key=lambda n: (n != "dockerd", n == "emulator", n)):
        say(name, f"pid {pids[name]}: {_stop_pid(pids[name], marker)}")
        _record_pid(paths, name, None)
    # dockerd's own containerd, in case dockerd had to be killed and left it running.
    with contextlib.suppress(OSError, ValueError):
        containerd_pid = int((paths.docker / "exec" / "containerd" / "containerd.pid").read_text().strip())
        if _alive(containerd_pid, marker):
            say("containerd", f"pid {containerd_pid}: {_stop_pid(containerd_pid, marker)}")
    if info.get("created_etc_docker"):
        with contextlib.suppress(OSError):
            Path("/etc/docker").rmdir()  # only if still empty
    paths.lab_json.unlink(missing_ok=True)
    if purge and paths.root.exists():
        shutil.rmtree(paths.root)
        say("lab", f"removed {paths.root}")
    else:
        say("lab", f"down; files kept in {paths.root} (--purge removes them)")


# -- fault injection ----------------------------------------------------------------------------
def _registry_spec(info: dict[str, Any], name: str) -> tuple[str, str, bool]:
    """(host, address, auth) of the registry ``name``: an account id or ``anonymous``."""
    if name == "anonymous":
        anonymous = info["anonymous_registry"]
        return anonymous["host"], anonymous["address"], False
    for account in info.get("accounts", []):
        if account["account_id"] == name:
            return account["host"], account["address"], True
    raise LabError(f"no registry {name!r} in this lab: use an account id or 'anonymous'")


def stop_registry(directory: Path | None, name: str) -> None:
    """Stop one registry of a running lab (to test what happens when it is down).

    :param directory: the lab directory (default: :func:`default_dir`).
    :param name: an account id of the lab, or ``anonymous``.
    """
    paths = _Paths((directory or default_dir()).resolve())
    with _locked(paths):
        info = load(paths.root)
        _registry_spec(info, name)
        component = f"registry-{name}"
        _stop_pid(info["pids"].get(component, -1), str(paths.root))
        _record_pid(paths, component, None)


def start_registry(directory: Path | None, name: str) -> int:
    """Start (again) one registry of a running lab, with its storage and htpasswd as they were.

    :param directory: the lab directory (default: :func:`default_dir`).
    :param name: an account id of the lab, or ``anonymous``.
    :return: the registry's new pid.
    """
    paths = _Paths((directory or default_dir()).resolve())
    with _locked(paths):
        info = load(paths.root)
        host, address, auth = _registry_spec(info, name)
        component = f"registry-{name}"
        if _alive(info["pids"].get(component, -1), str(paths.root)):
            return int(info["pids"][component])
        pid = _start_registry(paths, info["pids"]["dockerd"], name, host, address, auth)
        info["pids"][component] = pid
        _write_json(paths.lab_json, info)
        return pid


def restart_dockerd(directory: Path | None = None) -> None:
    """Restart the lab's Docker daemon, as a host's ``systemctl restart docker`` would.

    The registries live in the daemon's network namespace, which goes away with it: they are
    restarted too, with their storage, so images and credentials stay as they were.

    :param directory: the lab directory (default: :func:`default_dir`).
    """
    paths = _Paths((directory or default_dir()).resolve())
    with _locked(paths):
        info = load(paths.root)
        marker = str(paths.root)
        pids = info["pids"]
        for name in [n for n in pids if n.startswith("registry-")] + ["dockerd"]:
            _stop_pid(pids[name], marker)
        dockerd_pid, _ = _start_dockerd(paths)
        pids["dockerd"] = dockerd_pid
        for name in [n for n in pids if n.startswith("registry-")]:
            registry = name.removeprefix("registry-")
            host, address, auth = _registry_spec(info, registry)
            pids[name] = _start_registry(paths, dockerd_pid, registry, host, address, auth)
        _write_json(paths.lab_json, info)


# -- command line -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m airflow_ecr.testing.lab up|down|status|setup``.

    :param argv: command line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m airflow_ecr.testing.lab",
        description="Start, stop or check the airflow-ecr test lab; setup: the Debian packages it needs.",
    )
    parser.add_argument("command", choices=("up", "down", "status", "setup"))
    parser.add_argument("--dir", type=Path, default=None, help=f"lab directory (default: ${ENV_DIR} or {DEFAULT_DIR})")
    parser.add_argument("--swarm", action="store_true", help="up: also init a single-node swarm")
    parser.add_argument("--purge", action="store_true", help="down: also delete the lab directory")
    parser.add_argument(
        "--install", action="store_true", help="setup: install the missing packages (as root) instead of printing"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "setup":
            setup(install=args.install)
        elif args.command == "up":
            up(args.dir, swarm=args.swarm)
        elif args.command == "down":
            down(args.dir, purge=args.purge)
        else:
            return 0 if status(args.dir) else 1
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
