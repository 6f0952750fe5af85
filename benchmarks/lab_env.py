"""
The benchmark's environment: its private mount namespace, the names it serves there, its Airflow
home, the credential helper's way to the emulator, and the one-line failures.

Only the standard library (and the lab's :func:`~airflow_ecr_lab.processes.stop_process`,
which imports no Airflow) at import time: nothing here may import Airflow before
:meth:`BenchEnv.setup` has set ``AIRFLOW_HOME``.

The credential helper (``docker-credential-ecr-login``) calls ``https://api.ecr.<region>.amazonaws.com``
whatever the environment says. So the benchmark re-executes itself under ``unshare --mount`` with
private copies of ``/etc/hosts`` and ``/etc/nsswitch.conf`` bound over the real ones, and in those:

- every existing mapping of the names it serves is taken out (a host may already map
  ``api.ecr.<region>.amazonaws.com`` to a private VPC endpoint: the helper would then talk to that
  server) and one line maps them to the benchmark's TLS forwarder (``tls_forwarder.py``), which
  passes the bytes to the lab's ECR emulator;
- ``files`` comes first on the ``hosts:`` line, so no DNS answer comes before that line;
- the names are resolved once to check that only the forwarder's address comes back.

Nothing global changes: the copies live in a temp dir, the mounts die with the namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from airflow_ecr_lab.processes import stop_process

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
NAMESPACE_MARK = "AIRFLOW_ECR_BENCH_NAMESPACE"
NSSWITCH = Path("/etc/nsswitch.conf")
SECRET = "benchmark-secret-access-key"  # noqa: S105 - the emulator does not check signatures
CLI_CONN = "docker_ecr_cli"
# What the task-process parent looks up before it forks: a task has read some connection already.
UNRELATED_CONN = "bench_unrelated"


def access_key(approach: str) -> str:
    """The approach's own access key id: the emulator counts calls by the key that signed them."""
    return f"AKIABENCH{approach.upper().replace('_', '')}".ljust(20, "0")


# -- failures: one line each -----------------------------------------------------------------------
class BenchFailure(Exception):
    """An approach (or the benchmark's own set-up) failed: which, at which step, and why, in one line."""

    def __init__(self, approach: str, step: str, cause: str) -> None:
        super().__init__(approach, step, cause)
        self.approach, self.step, self.cause = approach, step, cause

    def __str__(self) -> str:
        return f"{self.approach}, {self.step}: {self.cause}"


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line (the first non-empty line of the message, shortened)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " / ".join(lines[:3]) if lines else repr(exc)
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def failing_as(approach: str, step: str) -> Iterator[None]:
    """Turn any error inside into a :class:`BenchFailure` of ``approach`` at ``step``."""
    try:
        yield
    except BenchFailure:
        raise
    except Exception as exc:
        raise BenchFailure(approach, step, one_line(exc)) from exc


def expect(condition: object, approach: str, step: str, cause: str) -> None:
    """Raise a :class:`BenchFailure` unless ``condition`` holds (instead of a bare ``assert``)."""
    if not condition:
        raise BenchFailure(approach, step, cause)


# -- the console, the task logs, processes -------------------------------------------------------
_STARTED = time.monotonic()
# The terminal, kept while the task logs of the measured part go to a file.
_CONSOLE: TextIO = sys.stdout


def say(text: str) -> None:
    print(f"bench: [{time.monotonic() - _STARTED:6.1f} s] {text}", file=_CONSOLE, flush=True)


@contextlib.contextmanager
def task_logs_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Airflow's task logs) to ``path``, restored after."""
    global _CONSOLE
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    _CONSOLE = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)
        _CONSOLE.close()
        _CONSOLE = sys.stdout


def run_checked(argv: list[str], env: dict[str, str], approach: str, step: str) -> str:
    """Run ``argv``; its stdout, or a :class:`BenchFailure` with the last line of its stderr."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        # The CLI's stderr may echo its argv (a token): only its last line, shortened, as a hint.
        last = next((line.strip() for line in reversed(done.stderr.splitlines()) if line.strip()), "")
        raise BenchFailure(approach, step, f"exit {done.returncode}: {last[:300]}")
    return done.stdout


@contextlib.contextmanager
def environment(settings: dict[str, str]) -> Iterator[None]:
    """Run with ``settings`` in ``os.environ``, restored after."""
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- the private mount namespace ---------------------------------------------------------------------
def reexec_in_private_mount_namespace(script: Path, argv: list[str]) -> int:
    """Run ``script argv`` again under ``unshare --mount`` with private hosts and nsswitch files."""
    if os.geteuid() != 0:
        print("bench: run as root (the lab and the credential helper's private /etc/hosts need it)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="airflow-ecr-bench-ns-"))
    try:
        hosts = work / "hosts"
        shutil.copyfile("/etc/hosts", hosts)
        binds = [(hosts, "/etc/hosts")]
        if NSSWITCH.exists():  # without one, glibc asks DNS first: ours puts the hosts file first
            nsswitch = work / "nsswitch.conf"
            nsswitch.write_text(files_first(NSSWITCH.read_text()))
            binds.append((nsswitch, str(NSSWITCH)))
        script_text = " && ".join(f'mount --bind "${2 * i + 1}" "${2 * i + 2}"' for i in range(len(binds)))
        script_text += f' && shift {2 * len(binds)} && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script_text, "sh"]
        command += [str(part) for pair in binds for part in pair]
        env = dict(os.environ, **{NAMESPACE_MARK: str(hosts)})
        proc = subprocess.Popen([*command, sys.executable, str(script), *argv], env=env)
        signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signal.SIGTERM))
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def files_first(nsswitch: str) -> str:
    """``nsswitch.conf`` text whose ``hosts:`` line asks the hosts file before anything else."""
    out = []
    for line in nsswitch.splitlines():
        key, sep, rest = line.partition(":")
        if sep and key.strip() == "hosts":
            sources = [s for s in rest.split() if s != "files"]
            line = "hosts: files " + " ".join(sources)
        out.append(line.rstrip())
    return "\n".join(out) + "\n"


def claim_names(text: str, address: str, names: list[str]) -> tuple[str, list[str]]:
    """
    ``/etc/hosts`` text in which ``names`` map to ``address`` only; and the mappings taken out.

    Any other line naming one of them loses that name (and goes when it names nothing else): a
    resolver may return every address of a name, in file order, and a client then talks to the first
    server that accepts the connection.
    """
    served = {n.lower() for n in names}
    removed, kept = [], []
    for line in text.splitlines():
        body, hash_, comment = line.partition("#")
        fields = body.split()
        if len(fields) < 2 or not served.intersection(f.lower() for f in fields[1:]):
            kept.append(line)
            continue
        removed.append(line.strip())
        others = [f for f in fields[1:] if f.lower() not in served]
        kept.append(f"# airflow-ecr benchmark, taken out: {line.strip()}")
        if others:
            kept.append(" ".join([fields[0], *others]) + (f" #{comment}" if hash_ else ""))
    mine = f"{address} {' '.join(names)}  # airflow-ecr benchmark: the credential helper's ECR API"
    return "\n".join([mine, *kept]) + "\n", removed


def check_resolution(names: list[str], address: str) -> None:
    """Every name resolves to ``address`` only, in this namespace (a one-line failure otherwise)."""
    for name in names:
        try:
            found = sorted({str(info[4][0]) for info in socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)})
        except OSError as exc:
            raise BenchFailure("helper", "private /etc/hosts", f"{name} does not resolve: {exc}") from None
        expect(
            found == [address],
            "helper",
            "private /etc/hosts",
            f"{name} resolves to {', '.join(found)}, not only the TLS forwarder's {address}",
        )


# -- the environment of one run --------------------------------------------------------------------
class BenchEnv:
    """
    The lab, this run's work directory and its Airflow home; built the same way in the benchmark's
    process and in the task-process parent (``BenchEnv(lab, work)``), set up once (:meth:`setup`).
    """

    def __init__(self, lab: dict[str, Any], work: Path) -> None:
        self.lab = lab
        self.work = work
        self.docker_url = str(lab["docker_host"])
        self.emulator_url = str(lab["emulator_url"])
        self.accounts: list[dict[str, Any]] = list(lab["accounts"])
        self.account = self.accounts[0]
        self.host = str(self.account["host"])
        self.image = f"{self.host}/lab/busybox:1"
        # Three distinct images of the first account, for the pin task's figure.
        self.pin_images = [f"{self.host}/{name}" for name in ("lab/busybox:1", "app/hello:1", "lab/python:3.11")]
        self.floor_image = str(lab["anonymous_registry"]["images"][0])
        self.registry_log = Path(lab["dir"]) / "registries" / self.account["account_id"] / "registry.log"
        self.floor_log = Path(lab["dir"]) / "registries" / "anonymous" / "registry.log"
        self.airflow_home = work / "airflow"
        self.ours_cache = work / "ours-cache"
        self.secrets_cache = work / "secrets-cache"
        self.helper_cache = work / "helper-cache"
        self.helper_config = work / "docker-config-helper"
        self.plain_config = work / "docker-config-plain"
        self.tls = work / "tls"
        self.api_names = sorted({f"api.ecr.{a['region']}.amazonaws.com" for a in self.accounts})
        self.forwarder: subprocess.Popen[bytes] | None = None

    # -- set-up ------------------------------------------------------------------------------
    def setup(self, preflight: Callable[[BenchEnv], None]) -> None:
        """
        Everything, in order: the environment, the helper's way to the emulator (checked by
        ``preflight``, the caller's: ``approaches.py`` sits above this module), Airflow.
        """
        self.prepare()
        self.start_forwarder()
        preflight(self)  # before the slow part: a broken helper set-up fails in seconds
        self.setup_airflow()

    def prepare(self) -> None:
        """This process's environment (inherited by every process it starts) and the docker configs."""
        from cryptography.fernet import Fernet

        self.airflow_home.mkdir(parents=True, exist_ok=True)
        os.environ.update(
            AIRFLOW_HOME=str(self.airflow_home),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.airflow_home / 'airflow.db'}",
            # Connection passwords encrypted in the database, as in a real deployment.
            AIRFLOW__CORE__FERNET_KEY=Fernet.generate_key().decode(),
            AIRFLOW__ECR__CACHE_DIR=str(self.ours_cache),
            AWS_EC2_METADATA_DISABLED="true",
            NO_PROXY="127.0.0.1,localhost",
            DOCKER_CONFIG=str(self.plain_config),
            # Connections are read as on an API server (env, then the metadata database): what a
            # task gets through its supervisor on Airflow 3.
            _AIRFLOW_PROCESS_CONTEXT="server",
        )
        for name in list(os.environ):  # the AWS connections come from the database only
            if name.startswith("AIRFLOW_CONN_"):
                del os.environ[name]
        self.plain_config.mkdir(parents=True, exist_ok=True)
        self.helper_config.mkdir(parents=True, exist_ok=True)
        helpers = {a["host"]: "ecr-login" for a in self.accounts}
        (self.helper_config / "config.json").write_text(json.dumps({"credHelpers": helpers}))

    def setup_airflow(self) -> None:
        """The metadata database, and the AWS connections stored in it."""
        say("airflow db migrate, AWS connections stored in the metadata database")
        run_checked([str(BIN / "airflow"), "db", "migrate"], dict(os.environ), "bench", "airflow db migrate")
        with failing_as("bench", "storing the connections in the metadata database"):
            self.store_connections()

    def aws_connection(self, approach: str) -> dict[str, Any]:
        return {
            "conn_type": "aws",
            "login": access_key(approach),
            "password": SECRET,
            "extra": {
                "region_name": self.account["region"],
                "endpoint_url": self.emulator_url,
                # One attempt per call: the emulator's count is the number of fetches.
                "config_kwargs": {"retries": {"total_max_attempts": 1}},
            },
        }

    def store_connections(self) -> None:
        """``aws_ours``, ``aws_naive``, ``aws_cli`` and an unrelated one, in the metadata database."""
        from airflow.models.connection import Connection
        from airflow.utils.session import create_session

        connections = {f"aws_{name}": self.aws_connection(name) for name in ("ours", "naive", "cli")}
        connections[UNRELATED_CONN] = {
            "conn_type": "generic",
            "host": "warehouse.example.internal",
            "login": "etl",
            "password": "not-a-real-password",
            "extra": {"purpose": "read by the task-process parent before it forks"},
        }
        with create_session() as session:
            for conn_id, spec in connections.items():
                session.query(Connection).filter(Connection.conn_id == conn_id).delete()
                session.add(Connection(conn_id=conn_id, **{**spec, "extra": json.dumps(spec["extra"])}))

    def start_forwarder(self) -> None:
        """The helper's ``api.ecr.<region>.amazonaws.com``: a TLS forwarder to the emulator, named in private."""
        from tls_forwarder import make_certificate  # benchmarks/tls_forwarder.py

        hosts_file = os.environ.get(NAMESPACE_MARK)
        if not hosts_file:
            raise BenchFailure("bench", "set-up", "not in the private mount namespace (run benchmarks/bench.py)")
        target = self.emulator_url.split("//", 1)[1]
        log_path = self.work / "forwarder.log"
        for _ in range(20):
            # A random loopback address: port 443 on it is ours alone, even next to another run.
            address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
            make_certificate(self.tls, self.api_names, address)
            ready = self.work / "forwarder.ready"
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    [
                        sys.executable, str(HERE / "tls_forwarder.py"), "--listen", f"{address}:443",
                        "--target", target, "--cert", str(self.tls / "server.crt"),
                        "--key", str(self.tls / "server.key"), "--ready-file", str(ready),
                    ],
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            deadline = time.monotonic() + 20
            while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if ready.exists():
                self.forwarder = proc
                break
            stop_process(proc)
        else:
            raise BenchFailure("helper", "TLS forwarder", f"did not start; see {log_path}")
        # In place (the file is bind-mounted: a rename would not be seen).
        path = Path(hosts_file)
        text, removed = claim_names(path.read_text(), address, self.api_names)
        with path.open("r+") as hosts:
            hosts.truncate(0)
            hosts.write(text)
        check_resolution(self.api_names, address)
        if removed:
            say(f"private /etc/hosts: took out {'; '.join(removed)}")
        say(f"credential helper: {', '.join(self.api_names)} -> {address}:443 (TLS) -> emulator {target}")

    def stop(self) -> None:
        if self.forwarder is not None:
            stop_process(self.forwarder)
            self.forwarder = None

    # -- what the approaches see -------------------------------------------------------------
    def helper_settings(self, cache_dir: Path | None = None) -> dict[str, str]:
        """The environment docker-py and the helper see in the helper approach's tasks."""
        return {
            "DOCKER_CONFIG": str(self.helper_config),
            "AWS_ACCESS_KEY_ID": access_key("helper"),
            "AWS_SECRET_ACCESS_KEY": SECRET,
            # The forwarder's CA, through the AWS SDK's setting (SSL_CERT_FILE did not work with helper 0.6.0).
            "AWS_CA_BUNDLE": str(self.tls / "ca.crt"),
            "AWS_ECR_CACHE_DIR": str(cache_dir or self.helper_cache),
        }

    def secrets_settings(self, cache_dir: Path | None = None) -> dict[str, str]:
        """The secrets backend approach's own host cache (so that making it cold leaves ours warm)."""
        return {"AIRFLOW__ECR__CACHE_DIR": str(cache_dir or self.secrets_cache)}

    def calls(self, approach: str) -> int:
        """ECR API calls the emulator has counted for ``approach``'s access key so far."""

        from airflow_ecr_lab import emulator_client

        return len(emulator_client(self.lab).calls(access_key(approach)))

    def calls_by_registry(self, approach: str, start: float, end: float) -> dict[str, int]:
        """``approach``'s calls received between ``start`` and ``end`` (epoch seconds), by registry id."""

        per_registry: dict[str, int] = {}
        from airflow_ecr_lab import emulator_client

        for call in emulator_client(self.lab).calls(access_key(approach)):
            if start <= call["time"] <= end:
                for registry_id in call.get("registry_ids") or ["(default)"]:
                    per_registry[registry_id] = per_registry.get(registry_id, 0) + 1
        return per_registry


def rotated(items: list[str], round_index: int) -> list[str]:
    """The round's order: rotated each round so no approach always runs first."""
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


def in_new_process(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """
    Fork; the child runs ``fn`` and sends its result (or its failure) back over a pipe, then exits.
    A failure in the child is raised here, as the :class:`BenchFailure` it was (or one naming it).
    """
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the task process
        code = 1
        try:
            os.close(read_fd)
            result = fn()
            code = 0
        except BenchFailure as failure:
            result = {"failure": [failure.approach, failure.step, failure.cause]}
        except BaseException as exc:
            result = {"failure": ["bench", "task process", one_line(exc)]}
        finally:
            with contextlib.suppress(BaseException):
                payload = json.dumps(result).encode()
                while payload:
                    payload = payload[os.write(write_fd, payload) :]
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if not chunks:
        raise BenchFailure("bench", "task process", f"exited {status} without a result")
    got = dict(json.loads(b"".join(chunks)))
    if got.get("failure"):
        raise BenchFailure(*got["failure"])
    return got


def remove_image(env: BenchEnv, image: str) -> None:
    import docker

    client = docker.APIClient(base_url=env.docker_url)
    with contextlib.suppress(docker.errors.NotFound):
        client.remove_image(image, noprune=True)
    client.close()
