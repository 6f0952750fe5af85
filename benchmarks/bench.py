"""
Benchmark: airflow-ecr side by side with the ways people pull ECR images from Airflow today.

One run measures every approach, interleaved round by round in the same process, against the same
lab (a real Docker engine, registries demanding ECR-style basic auth by their real names, the ECR
API emulator; see ``airflow_ecr.testing.lab``), and writes ``latest.json``, ``latest.md`` and
``latest.png``. The approaches:

- ``floor``: a plain ``DockerOperator`` on the lab's anonymous registry: a task with no
  authentication at all;
- ``cli``: the community pattern: ``EcrHook.get_temporary_credentials()``, then ``airflow
  connections delete`` + ``airflow connections add --conn-password TOKEN`` as subprocesses, then a
  plain ``DockerOperator(docker_conn_id=...)`` (which logs in through the daemon);
- ``helper``: ``amazon-ecr-credential-helper`` as a docker ``credHelpers`` entry, plain
  ``DockerOperator``;
- ``naive``: ``EcrHook.get_temporary_credentials()`` in every task, then ``docker login`` through
  the daemon, then the pull;
- ``ours``: ``EcrDockerOperator``; ``ours_secrets``: a plain ``DockerOperator`` whose connection
  comes from ``EcrDockerConnectionBackend`` (credential-step figures only).

What each figure measures is written into the results (``notes``) and the Markdown.

Usage (as root, with a lab up; ``scripts/bench.sh`` / ``make bench`` start one)::

    python benchmarks/bench.py [--quick] [--lab DIR] [--out FILE.json]

The credential helper calls ``https://api.ecr.<region>.amazonaws.com`` whatever the environment
says, so the run re-executes itself under ``unshare --mount`` with a private ``/etc/hosts`` that
points those names at a TLS forwarder (``tls_forwarder.py``) in front of the emulator; nothing
global changes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
NAMESPACE_MARK = "AIRFLOW_ECR_BENCH_NAMESPACE"
APPROACHES = {
    "floor": "DockerOperator, anonymous registry (floor)",
    "cli": "CLI delete+add, then DockerOperator",
    "helper": "amazon-ecr-credential-helper + DockerOperator",
    "naive": "EcrHook + docker login in every task",
    "ours": "airflow-ecr EcrDockerOperator",
    "ours_secrets": "airflow-ecr secrets backend + DockerOperator",
}
PEERS = ("cli", "helper", "naive")
# One access key per approach: the emulator counts calls by the key that signed them.
KEYS = {name: f"AKIABENCH{name.upper().replace('_', '')}".ljust(20, "0") for name in APPROACHES}
SECRET = "benchmark-secret-access-key"  # noqa: S105 - the emulator does not check signatures
CLI_CONN = "docker_ecr_cli"


# -- statistics ---------------------------------------------------------------------------------
def summary(samples: list[float]) -> dict[str, Any]:
    """n, median, p10, p90, min, max of ``samples`` (rounded)."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    if len(ordered) >= 2:
        deciles = statistics.quantiles(ordered, n=10, method="inclusive")
        p10, p90 = deciles[0], deciles[-1]
    else:
        p10 = p90 = ordered[0]
    return {
        "n": len(ordered),
        "median": _round(statistics.median(ordered)),
        "p10": _round(p10),
        "p90": _round(p90),
        "min": _round(ordered[0]),
        "max": _round(ordered[-1]),
    }


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def paired_ratios(numerators: list[float | None], denominators: list[float | None]) -> dict[str, Any]:
    """Ratios of samples taken in the same round (pair by pair), summarized."""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=True) if a is not None and b is not None and b > 0]
    return summary(ratios)


# -- the lab's registry logs: requests the registry served ---------------------------------------
_REQUEST = re.compile(r'http\.request\.id=(\S+).*?http\.request\.uri="?([^" ]+)')


class RegistryLog:
    """Counts the HTTP requests a lab registry received, from its log (one line per request event)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def requests_since_mark(self) -> dict[str, int]:
        """{"auth": requests to the ``/v2/`` base endpoint (ping / login check), "total": all}."""
        size, deadline = -1, time.monotonic() + 2
        while time.monotonic() < deadline:  # the registry logs right after answering: let it settle
            now = self.path.stat().st_size
            if now == size:
                break
            size = now
            time.sleep(0.1)
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
        uris: dict[str, str] = {}
        for match in _REQUEST.finditer(text):
            uris[match.group(1)] = match.group(2)
        return {"auth": sum(1 for u in uris.values() if u == "/v2/"), "total": len(uris)}


# -- instrumentation: time spent in each approach's credential code inside a real task ------------
class CredentialClock:
    """Accumulates the time spent in credential code paths (wrappers cost about a microsecond)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def wrap(self, owner: Any, name: str) -> None:
        original = getattr(owner, name)
        clock = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - start
                clock.calls += 1

        setattr(owner, name, timed)

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start


CLOCK = CredentialClock()


# -- the namespace: a private /etc/hosts for the credential helper --------------------------------
def reexec_in_private_mount_namespace(argv: list[str]) -> int:
    """Run this script again under ``unshare --mount`` with a copy of /etc/hosts bound over it."""
    if os.geteuid() != 0:
        print("bench: run as root (the lab and the credential helper's private /etc/hosts need it)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="airflow-ecr-bench-ns-"))
    try:
        hosts = work / "hosts"
        shutil.copyfile("/etc/hosts", hosts)
        script = 'mount --bind "$0" /etc/hosts && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, str(hosts)]
        env = dict(os.environ, **{NAMESPACE_MARK: str(hosts)})
        proc = subprocess.Popen([*command, sys.executable, str(Path(__file__).resolve()), *argv], env=env)
        signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signal.SIGTERM))
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


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


# -- the benchmark ------------------------------------------------------------------------------
class Bench:
    """Everything one run needs: the lab, private Airflow home, helper setup, and the approaches."""

    def __init__(self, lab: dict[str, Any], work: Path, quick: bool) -> None:
        self.lab = lab
        self.work = work
        self.quick = quick
        self.docker_url = str(lab["docker_host"])
        self.accounts = lab["accounts"]
        self.account = self.accounts[0]
        self.host = str(self.account["host"])
        self.image = f"{self.host}/lab/busybox:1"
        self.floor_image = str(lab["anonymous_registry"]["images"][0])
        self.registry_log = RegistryLog(Path(lab["dir"]) / "registries" / self.account["account_id"] / "registry.log")
        self.floor_log = RegistryLog(Path(lab["dir"]) / "registries" / "anonymous" / "registry.log")
        self.ours_cache = work / "ours-cache"
        self.secrets_cache = work / "secrets-cache"
        self.helper_cache = work / "helper-cache"
        self.helper_config = work / "docker-config-helper"
        self.plain_config = work / "docker-config-plain"
        self.forwarder: subprocess.Popen[bytes] | None = None
        self.env_base: dict[str, str] = {}

    # -- setup -------------------------------------------------------------------------------
    def setup_environment(self) -> None:
        emulator_url = self.lab["emulator_url"]
        os.environ.update(
            AIRFLOW_HOME=str(self.work / "airflow"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.work / 'airflow' / 'airflow.db'}",
            AIRFLOW__ECR__CACHE_DIR=str(self.ours_cache),
            AWS_EC2_METADATA_DISABLED="true",
            NO_PROXY="127.0.0.1,localhost",
            DOCKER_CONFIG=str(self.plain_config),
            # Connections are read as on an API server (env, then the metadata database): what the
            # Airflow 3 task of the CLI pattern gets through its supervisor.
            _AIRFLOW_PROCESS_CONTEXT="server",
        )
        for name in ("ours", "naive", "cli"):
            os.environ[f"AIRFLOW_CONN_AWS_{name.upper()}"] = json.dumps(
                {
                    "conn_type": "aws",
                    "login": KEYS[name],
                    "password": SECRET,
                    "extra": {
                        "region_name": self.account["region"],
                        "endpoint_url": emulator_url,
                        # One attempt per call: the emulator's count is the number of fetches.
                        "config_kwargs": {"retries": {"total_max_attempts": 1}},
                    },
                }
            )
        self.plain_config.mkdir(parents=True)
        self.helper_config.mkdir(parents=True)
        helpers = {a["host"]: "ecr-login" for a in self.accounts}
        (self.helper_config / "config.json").write_text(json.dumps({"credHelpers": helpers}))
        (self.work / "airflow").mkdir(parents=True, exist_ok=True)
        say("airflow db migrate (the CLI pattern needs a metadata database)")
        run_checked([str(BIN / "airflow"), "db", "migrate"], dict(os.environ), "airflow db migrate")
        self.start_forwarder()

    def start_forwarder(self) -> None:
        """The helper's ``api.ecr.<region>.amazonaws.com``: a TLS forwarder to the emulator."""
        from airflow_ecr.testing.lab import _make_tls

        hosts_file = os.environ.get(NAMESPACE_MARK)
        if not hosts_file:
            raise SystemExit("bench: internal error: not in the private mount namespace")
        names = sorted({f"api.ecr.{a['region']}.amazonaws.com" for a in self.accounts})
        target = self.lab["emulator_url"].split("//", 1)[1]
        for _ in range(20):
            # A random loopback address: port 443 on it is ours alone, even next to another run.
            address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
            _make_tls(self.work / "tls", dict.fromkeys(names, address))
            ready = self.work / "forwarder.ready"
            log = (self.work / "forwarder.log").open("ab")
            proc = subprocess.Popen(
                [
                    sys.executable, str(HERE / "tls_forwarder.py"), "--listen", f"{address}:443",
                    "--target", target, "--cert", str(self.work / "tls" / "server.crt"),
                    "--key", str(self.work / "tls" / "server.key"), "--ready-file", str(ready),
                ],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            log.close()
            deadline = time.monotonic() + 20
            while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if ready.exists():
                self.forwarder = proc
                break
            stop_process(proc)
        else:
            raise SystemExit(f"bench: the TLS forwarder did not start; see {self.work / 'forwarder.log'}")
        # In place (the file is bind-mounted: a rename would not be seen).
        with open(hosts_file, "a") as hosts:
            hosts.write(f"\n# airflow-ecr benchmark: the credential helper's ECR API\n{address} {' '.join(names)}\n")
        say(f"credential helper: {', '.join(names)} -> {address}:443 (TLS) -> emulator {target}")

    def stop(self) -> None:
        if self.forwarder is not None:
            stop_process(self.forwarder)
            self.forwarder = None

    def helper_settings(self, cache_dir: Path | None = None) -> dict[str, str]:
        """The environment docker-py and the helper see in the helper approach's tasks."""
        return {
            "DOCKER_CONFIG": str(self.helper_config),
            "AWS_ACCESS_KEY_ID": KEYS["helper"],
            "AWS_SECRET_ACCESS_KEY": SECRET,
            # The forwarder's CA, through the AWS SDK's setting (SSL_CERT_FILE did not work with helper 0.6.0).
            "AWS_CA_BUNDLE": str(self.work / "tls" / "ca.crt"),
            "AWS_ECR_CACHE_DIR": str(cache_dir or self.helper_cache),
        }

    def helper_env(self, cache_dir: Path | None = None) -> contextlib.AbstractContextManager[None]:
        """Run with :meth:`helper_settings` in this process's environment."""
        return environment(self.helper_settings(cache_dir))

    def secrets_env(self) -> contextlib.AbstractContextManager[None]:
        """The secrets backend approach's own host cache (so that making it cold leaves ours warm)."""
        return environment({"AIRFLOW__ECR__CACHE_DIR": str(self.secrets_cache)})

    # -- ECR calls ---------------------------------------------------------------------------
    def calls(self, approach: str) -> list[dict[str, Any]]:
        from airflow_ecr.testing.emulator import EmulatorClient

        return EmulatorClient(self.lab["emulator_url"]).calls(KEYS[approach])

    # -- credential steps (what each approach adds to one task, outside the container run) ---
    def make_cold(self, approach: str) -> None:
        from airflow_ecr.tokens import TokenCache

        if approach in ("ours", "ours_secrets"):
            TokenCache.clear_memory()
            shutil.rmtree(self.ours_cache if approach == "ours" else self.secrets_cache, ignore_errors=True)
        elif approach == "helper":
            shutil.rmtree(self.helper_cache, ignore_errors=True)

    def credential_step(self, approach: str) -> float:
        """One new task's credential work, timed (seconds); the untimed set-up is what every task does."""
        import docker

        if approach == "ours":
            from airflow_ecr.hooks.docker import EcrDockerHook
            from airflow_ecr.tokens import TokenCache

            hook = EcrDockerHook(image=self.image, aws_conn_id="aws_ours", base_url=self.docker_url)
            TokenCache.clear_memory()  # a new task process
            start = time.perf_counter()
            auth = hook.registry_auth()
            elapsed = time.perf_counter() - start
            assert auth["username"] == "AWS"
            return elapsed
        if approach == "ours_secrets":
            from airflow_ecr.tokens import TokenCache

            backend = self.secrets_backend()
            client = docker.APIClient(base_url=self.docker_url)
            TokenCache.clear_memory()
            start = time.perf_counter()
            with self.secrets_env():
                conn = backend.get_connection(f"ecr:{self.host}")
            # DockerHook logs in with the connection it gets (reauth by default): a daemon /auth call.
            client.login(username=conn.login, password=conn.password, registry=conn.host, reauth=True)
            elapsed = time.perf_counter() - start
            client.close()
            return elapsed
        if approach == "helper":
            with self.helper_env():
                config = docker.auth.load_config()  # done by every APIClient, whatever the approach
                start = time.perf_counter()
                auth = docker.auth.resolve_authconfig(config, self.host)  # runs the helper, as a pull does
                elapsed = time.perf_counter() - start
            assert auth and auth["Username"] == "AWS", auth
            return elapsed
        if approach == "naive":
            client = docker.APIClient(base_url=self.docker_url)
            start = time.perf_counter()
            self.naive_login(client, "aws_naive")
            elapsed = time.perf_counter() - start
            client.close()
            return elapsed
        if approach == "cli":
            from airflow_ecr._compat import BaseHook

            client = docker.APIClient(base_url=self.docker_url)
            start = time.perf_counter()
            self.cli_write()
            conn = BaseHook.get_connection(CLI_CONN)
            client.login(username=conn.login, password=conn.password, registry=conn.host, reauth=True)
            elapsed = time.perf_counter() - start
            client.close()
            return elapsed
        raise ValueError(approach)

    def secrets_backend(self) -> Any:
        from airflow_ecr.secrets.ecr import EcrDockerConnectionBackend

        backend = EcrDockerConnectionBackend(
            endpoint_url=self.lab["emulator_url"],
            aws_access_key_id=KEYS["ours_secrets"],
            aws_secret_access_key=SECRET,
            config_kwargs={"retries": {"total_max_attempts": 1}},
        )
        return backend

    def naive_login(self, client: Any, aws_conn_id: str) -> None:
        """The naive glue: a token from the amazon provider's EcrHook, then a daemon login."""
        from airflow.providers.amazon.aws.hooks.ecr import EcrHook

        hook = EcrHook(aws_conn_id=aws_conn_id, region_name=self.account["region"])
        for credentials in hook.get_temporary_credentials(registry_ids=[self.account["account_id"]]):
            client.login(
                username=credentials.username,
                password=credentials.password,
                registry=credentials.proxy_endpoint,
                reauth=True,
            )

    def cli_fetch(self) -> str:
        from airflow.providers.amazon.aws.hooks.ecr import EcrHook

        hook = EcrHook(aws_conn_id="aws_cli", region_name=self.account["region"])
        (credentials,) = hook.get_temporary_credentials(registry_ids=[self.account["account_id"]])
        return str(credentials.password)

    def cli_write(self) -> None:
        """The community operator's body: fetch, then ``airflow connections delete`` + ``add``."""
        password = self.cli_fetch()
        airflow = str(BIN / "airflow")
        env = dict(os.environ)
        # The widely copied operator ignores both return codes; the delete fails when nothing is there.
        subprocess.run([airflow, "connections", "delete", CLI_CONN], env=env, capture_output=True, check=False)
        run_checked(
            [
                airflow, "connections", "add", CLI_CONN, "--conn-type", "docker", "--conn-host", self.host,
                "--conn-login", "AWS", "--conn-password", password,
            ],
            env,
            "airflow connections add",
        )  # fmt: skip

    # -- end-to-end tasks --------------------------------------------------------------------
    def remove_image(self, image: str) -> None:
        import docker

        client = docker.APIClient(base_url=self.docker_url)
        with contextlib.suppress(docker.errors.NotFound):
            client.remove_image(image, noprune=True)
        client.close()

    def task(self, approach: str) -> str:
        """One real task: the approach's pre-task step, then ``execute()`` (pull if absent, run, remove)."""
        from airflow.providers.docker.operators.docker import DockerOperator

        from airflow_ecr.operators.docker import EcrDockerOperator
        from airflow_ecr.tokens import TokenCache

        common: dict[str, Any] = {
            "task_id": f"bench_{approach}",
            "docker_url": self.docker_url,
            "network_mode": "none",
            "command": ["echo", "bench"],
            "auto_remove": "success",
            "mount_tmp_dir": False,
            "force_pull": False,
        }
        if approach == "floor":
            return str(DockerOperator(image=self.floor_image, **common).execute({}))
        if approach == "ours":
            TokenCache.clear_memory()  # a new task process: only the host cache is warm
            return str(EcrDockerOperator(image=self.image, aws_conn_id="aws_ours", **common).execute({}))
        if approach == "helper":
            with self.helper_env():
                return str(DockerOperator(image=self.image, **common).execute({}))
        if approach == "naive":
            operator = DockerOperator(image=self.image, **common)
            with CLOCK.timing():
                from airflow.providers.amazon.aws.hooks.ecr import EcrHook

                hook = EcrHook(aws_conn_id="aws_naive", region_name=self.account["region"])
                (credentials,) = hook.get_temporary_credentials(registry_ids=[self.account["account_id"]])
            # The login is timed by the APIClient.login wrapper.
            operator.cli.login(
                username=credentials.username,
                password=credentials.password,
                registry=credentials.proxy_endpoint,
                reauth=True,
            )
            return str(operator.execute({}))
        if approach == "cli":
            with CLOCK.timing():
                self.cli_write()
            return str(DockerOperator(image=self.image, docker_conn_id=CLI_CONN, **common).execute({}))
        raise ValueError(approach)

    def measured_task(self, approach: str) -> dict[str, Any]:
        """Run one task; its wall time, credential time, ECR calls and registry requests."""
        log = self.floor_log if approach == "floor" else self.registry_log
        log.mark()
        calls_before = len(self.calls(approach)) if approach != "floor" else 0
        CLOCK.reset()
        start = time.perf_counter()
        output = self.task(approach)
        elapsed = time.perf_counter() - start
        if output != "bench":
            raise SystemExit(f"bench: the {approach} task printed {output!r}, not 'bench'")
        return {
            "seconds": elapsed,
            "credential_seconds": CLOCK.seconds,
            "ecr_calls": (len(self.calls(approach)) - calls_before) if approach != "floor" else 0,
            "registry": log.requests_since_mark(),
        }


def instrument() -> None:
    """Time the credential code of each approach inside real tasks."""
    import docker
    from docker.credentials import Store

    from airflow_ecr.hooks.docker import EcrAuthenticator

    CLOCK.wrap(EcrAuthenticator, "auth_for")  # ours: every token lookup of a pull
    CLOCK.wrap(Store, "get")  # the helper: docker-py running docker-credential-ecr-login
    CLOCK.wrap(docker.APIClient, "login")  # naive and CLI: the daemon /auth round trip


# -- many task processes at once ------------------------------------------------------------------
def zygote_main(config: dict[str, Any]) -> int:
    """
    Import what the tasks need once, then for each run of ``config["runs"]`` fork that many task
    processes (as Airflow's executors start task processes from an already started parent), release
    them at once, and have each do its approach's credential step; print a JSON summary per run.
    """
    logging.disable(logging.WARNING)
    import docker
    from airflow.providers.amazon.aws.hooks.ecr import EcrHook

    from airflow_ecr.hooks.docker import EcrDockerHook
    from airflow_ecr.tokens import TokenCache

    accounts = config["accounts"]

    def step(approach: str, index: int) -> None:
        account = accounts[index % len(accounts)]
        host = account["host"]
        if approach == "ours":
            TokenCache.clear_memory()
            ours = EcrDockerHook(image=f"{host}/lab/busybox:1", aws_conn_id="aws_ours", base_url=config["docker_url"])
            assert ours.registry_auth()["username"] == "AWS"
        elif approach == "helper":
            auth = docker.auth.resolve_authconfig(docker.auth.load_config(), host)
            assert auth and auth["Username"] == "AWS"
        else:
            hook = EcrHook(aws_conn_id=f"aws_{approach}", region_name=account["region"])
            (credentials,) = hook.get_temporary_credentials(registry_ids=[account["account_id"]])
            if approach == "naive":  # the CLI pattern's writes make no ECR call: left out here
                client = docker.APIClient(base_url=config["docker_url"])
                client.login(
                    username=credentials.username,
                    password=credentials.password,
                    registry=credentials.proxy_endpoint,
                    reauth=True,
                )

    results = []
    for spec in config["runs"]:
        approach, processes = spec["approach"], spec["processes"]
        saved = dict(os.environ)
        os.environ.update(spec["env"])  # inherited by the forked task processes (and the helper)
        release_read, release_write = os.pipe()
        pids = []
        start = time.monotonic()
        for index in range(processes):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.close(release_write)
                    os.read(release_read, 1)  # returns when the parent closes the pipe: all start together
                    step(approach, index)
                    code = 0
                except BaseException as exc:
                    print(f"{approach} task process {index}: {type(exc).__name__}: {exc}", file=sys.stderr)
                finally:
                    os._exit(code)
            pids.append(pid)
        os.close(release_write)
        released = time.monotonic()
        failed = sum(1 for pid in pids if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0)
        os.close(release_read)
        os.environ.clear()
        os.environ.update(saved)
        results.append(
            {
                "approach": approach,
                "processes": processes,
                "failed": failed,
                "fork_s": round(released - start, 3),
                "wall_s": round(time.monotonic() - released, 3),
            }
        )
    print(json.dumps(results))
    return 0 if all(r["failed"] == 0 for r in results) else 1


def concurrent_processes(bench: Bench, processes: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Task processes starting together on a cold host, per approach; ECR calls counted by registry."""
    runs = []
    for approach, count in processes.items():
        cold = bench.work / f"cold-{approach}"
        env = {"AIRFLOW__ECR__CACHE_DIR": str(cold)}
        if approach == "helper":
            env = bench.helper_settings(cold)
        runs.append({"approach": approach, "processes": count, "env": env})
    before = {a: len(bench.calls(a)) for a in processes}
    config = {"accounts": bench.accounts, "docker_url": bench.docker_url, "runs": runs}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--zygote", json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: task processes at once failed:\n{done.stderr[-3000:]}")
    results = {r["approach"]: r for r in json.loads(done.stdout.strip().splitlines()[-1])}
    for approach, result in results.items():
        per_registry: dict[str, int] = {}
        calls = bench.calls(approach)[before[approach] :]
        for call in calls:
            for registry_id in call.get("registry_ids") or ["(default)"]:
                per_registry[registry_id] = per_registry.get(registry_id, 0) + 1
        result.update(ecr_calls=len(calls), ecr_calls_per_registry=per_registry, registries=len(bench.accounts))
    return results


# -- the run --------------------------------------------------------------------------------------
_STARTED = time.monotonic()
# The terminal, kept when the task logs of the measured part go to a file.
_CONSOLE = sys.stdout


def say(text: str) -> None:
    print(f"bench: [{time.monotonic() - _STARTED:6.1f} s] {text}", file=_CONSOLE, flush=True)


def run_checked(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        # The CLI's stderr may echo its argv (the token): show only the last lines, as a hint.
        raise SystemExit(f"bench: {what} failed ({done.returncode}):\n{done.stderr[-1500:]}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rotated(items: list[str], round_index: int) -> list[str]:
    """The round's order: rotated each round so no approach always runs first."""
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


def measure(bench: Bench, quick: bool) -> dict[str, Any]:
    """All figures; every loop interleaves the approaches round by round."""
    plan = {
        "credential_rounds": 3 if quick else 100,
        "e2e_rounds": 2 if quick else 30,
        "local_rounds": 1 if quick else 10,
        # The CLI pattern costs seconds per task: it runs in the first rounds only.
        "cli_pull_rounds": 1 if quick else 5,
        "cli_local_rounds": 1 if quick else 3,
        "sequential_tasks": 20 if quick else 100,
        "processes": 32,
        # Quick: fewer processes for the peers (their count is one call per process anyway).
        "peer_processes": 8 if quick else 32,
    }
    figures: dict[str, Any] = {"plan": plan}

    # Warm-up: imports, first connections; leaves ours' and the helper's host caches warm.
    for approach in ("floor", "ours", "helper", "naive"):
        bench.remove_image(bench.floor_image if approach == "floor" else bench.image)
        bench.task(approach)
    bench.credential_step("ours_secrets")

    # 1. Credential overhead, warm and cold (credential step alone, in this process).
    say(f"credential step alone: {plan['credential_rounds']} rounds")
    warm_names = ["ours", "ours_secrets", "helper", "naive"]
    warm: dict[str, list[float | None]] = {n: [] for n in warm_names}
    cold: dict[str, list[float | None]] = {n: [] for n in ("ours", "ours_secrets", "helper")}
    warm_calls = dict.fromkeys(warm_names, 0)
    for index in range(plan["credential_rounds"]):
        for approach in rotated(warm_names, index):
            before = len(bench.calls(approach))
            warm[approach].append(bench.credential_step(approach) * 1000)
            warm_calls[approach] += len(bench.calls(approach)) - before
        for approach in rotated(list(cold), index):
            bench.make_cold(approach)
            cold[approach].append(bench.credential_step(approach) * 1000)
    figures["credential_overhead_ms"] = {
        "warm": {n: summary([v for v in s if v is not None]) for n, s in warm.items()},
        # The naive glue and the CLI pattern keep no cache: every task is a cold one.
        "cold": {
            **{n: summary([v for v in s if v is not None]) for n, s in cold.items()},
            "naive": summary([v for v in warm["naive"] if v is not None]),
        },
    }
    ratios: dict[str, Any] = {
        "credential_overhead_warm": {p: paired_ratios(warm[p], warm["ours"]) for p in ("helper", "naive")},
        "credential_overhead_cold": {
            "helper": paired_ratios(cold["helper"], cold["ours"]),
            "naive": paired_ratios(warm["naive"], cold["ours"]),
        },
    }

    # 2. ECR calls: sequential tasks on one host, then task processes starting together (cold host).
    tasks = plan["sequential_tasks"]
    say(f"ECR calls: {tasks} sequential tasks, then {plan['processes']} task processes at once")
    sequential: dict[str, int] = {}
    for approach in ("ours", "ours_secrets", "helper", "naive", "cli"):
        bench.make_cold(approach)
        before = len(bench.calls(approach))
        for _ in range(tasks):
            if approach == "cli":
                bench.cli_fetch()  # its delete+add subprocesses make no ECR call (and cost seconds each)
            else:
                bench.credential_step(approach)
        sequential[approach] = len(bench.calls(approach)) - before
    concurrent = concurrent_processes(
        bench,
        {a: plan["processes"] if a == "ours" else plan["peer_processes"] for a in ("ours", "helper", "naive", "cli")},
    )
    figures["ecr_calls"] = {
        "sequential_tasks": {"tasks": tasks, **sequential},
        "concurrent_processes": concurrent,
        # Proof that the warm figures are warm: the calls made during them (naive: one per task).
        "during_warm_credential_steps": {"steps": plan["credential_rounds"], **warm_calls},
    }

    # 3 and 4. Real tasks: pull (image absent) and image already local, against the floor.
    instrument()
    for kind, rounds in (("pull", plan["e2e_rounds"]), ("image_local", plan["local_rounds"])):
        names = ["floor", "ours", "helper", "naive", "cli"]
        cli_rounds = plan["cli_pull_rounds" if kind == "pull" else "cli_local_rounds"]
        say(f"end-to-end tasks, {kind}: {rounds} rounds (the CLI pattern in the first {cli_rounds})")
        samples: dict[str, list[dict[str, Any] | None]] = {n: [] for n in names}
        if kind == "image_local":  # the images stay from here on: the tasks remove containers only
            bench.task("floor")
            bench.task("ours")
        ours_cold: list[float | None] = []  # a cold lookup in every round, to pair the CLI pattern's with
        for index in range(rounds):
            if kind == "pull":
                bench.make_cold("ours")
                ours_cold.append(bench.credential_step("ours") * 1000)
            for approach in rotated(names, index):
                if approach == "cli" and index >= cli_rounds:
                    samples["cli"].append(None)
                    continue
                if kind == "pull":
                    bench.remove_image(bench.floor_image if approach == "floor" else bench.image)
                samples[approach].append(bench.measured_task(approach))

        def column(name: str, key: str, got: dict[str, Any] = samples) -> list[float | None]:
            return [None if s is None else s[key] * 1000 for s in got[name]]

        def taken(name: str, got: dict[str, Any] = samples) -> list[dict[str, Any]]:
            return [s for s in got[name] if s is not None]

        figures.setdefault("end_to_end_ms", {})[kind] = {
            n: summary([v for v in column(n, "seconds") if v is not None]) for n in names
        }
        figures.setdefault("credential_in_task_ms", {})[kind] = {
            n: summary([v for v in column(n, "credential_seconds") if v is not None]) for n in names if n != "floor"
        }
        figures.setdefault("ecr_calls_per_task", {})[kind] = {
            n: max(s["ecr_calls"] for s in taken(n)) for n in names if n != "floor"
        }
        figures.setdefault("registry_requests_per_task", {})[kind] = {
            n: {
                "auth": max(s["registry"]["auth"] for s in taken(n)),
                "total": max(s["registry"]["total"] for s in taken(n)),
            }
            for n in names
        }
        ratios[f"end_to_end_{kind}_vs_floor"] = {
            n: paired_ratios(column(n, "seconds"), column("floor", "seconds")) for n in names if n != "floor"
        }
        if kind == "image_local":
            figures["credential_overhead_ms"]["image_local"] = figures["credential_in_task_ms"][kind]
        else:
            # The CLI pattern's credential step is timed inside its real tasks (it keeps no cache:
            # warm = cold), and paired with ours' in-task lookup (warm host cache) of the same round.
            cli = figures["credential_in_task_ms"][kind]["cli"]
            figures["credential_overhead_ms"]["warm"]["cli"] = figures["credential_overhead_ms"]["cold"]["cli"] = cli
            in_task = column("ours", "credential_seconds")
            ratios["credential_overhead_warm"]["cli"] = paired_ratios(column("cli", "credential_seconds"), in_task)
            ratios["credential_overhead_cold"]["cli"] = paired_ratios(column("cli", "credential_seconds"), ours_cold)
            ratios["credential_overhead_in_task_warm"] = {
                p: paired_ratios(column(p, "credential_seconds"), in_task) for p in PEERS
            }
    figures["ratios"] = ratios
    return figures


def evaluate_targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with what was measured and whether it is met."""
    warm = figures["credential_overhead_ms"]["warm"]
    ratios = figures["ratios"]
    local_calls = figures["ecr_calls_per_task"]["image_local"]["ours"]
    local_auth = figures["registry_requests_per_task"]["image_local"]["ours"]["auth"]
    concurrent = figures["ecr_calls"]["concurrent_processes"]["ours"]
    per_registry = concurrent["ecr_calls_per_registry"]
    e2e = ratios["end_to_end_pull_vs_floor"]["ours"]
    helper_ratio = ratios["credential_overhead_warm"]["helper"].get("median", 0)
    cli_ratio = ratios["credential_overhead_warm"]["cli"].get("median", 0)
    return [
        {
            "target": "warm credential overhead per task < 1 ms (median)",
            "measured": f"{warm['ours']['median']:.3g} ms",
            "met": warm["ours"]["median"] < 1,
        },
        {
            "target": "at least 10x below the credential helper (warm)",
            "measured": f"{helper_ratio:.3g}x",
            "met": helper_ratio >= 10,
        },
        {
            "target": "at least 1000x below the CLI pattern (warm)",
            "measured": f"{cli_ratio:,.0f}x",
            "met": cli_ratio >= 1000,
        },
        {
            "target": "image already local: 0 ECR calls and 0 registry auth round trips",
            "measured": f"{local_calls} ECR calls, {local_auth} auth round trips",
            "met": local_calls == 0 and local_auth == 0,
        },
        {
            "target": f"{concurrent['processes']} task processes at once, cold host: 1 ECR call per registry",
            "measured": ", ".join(f"{k}: {v}" for k, v in sorted(per_registry.items())) or "no call",
            "met": len(per_registry) == concurrent["registries"] and all(v == 1 for v in per_registry.values()),
        },
        {
            "target": "end-to-end task time within 5% of the anonymous-registry floor (median of paired ratios)",
            "measured": f"{e2e.get('median', 0):.3g}x the floor",
            "met": e2e.get("median", 99) <= 1.05,
        },
    ]


NOTES = [
    "All approaches run in one process, interleaved round by round (the order rotates every round); "
    "ratios are computed pair by pair from samples of the same round, then summarized (median, p10-p90).",
    "Credential overhead, warm/cold: the credential work one new task adds, timed alone in this process "
    "(libraries already imported). ours: EcrDockerHook.registry_auth() with the process memory cache "
    "emptied (warm = served by the host file cache; cold = host cache emptied too: one GetAuthorizationToken "
    "call). ours_secrets: EcrDockerConnectionBackend.get_connection() plus the daemon login DockerHook does "
    "with that connection. helper: docker-py's resolve_authconfig(), which runs docker-credential-ecr-login "
    "as a pull does (warm = its file cache filled; cold = emptied). naive: EcrHook.get_temporary_credentials() "
    "plus docker login through the daemon. naive keeps no cache: its cold figure is its warm one.",
    "cli (seconds per task) is timed inside its real end-to-end tasks instead: the token fetch, the `airflow "
    "connections delete` and `airflow connections add` subprocesses, and the daemon login (its connection read "
    "left out); it keeps no cache, so warm = cold = image local. Its ratios pair it with airflow-ecr's in-task "
    "token lookup (warm host cache) and with a cold lookup taken in the same round.",
    "Credential overhead, image already local: time spent in each approach's credential code during a real "
    "task whose image is present (instrumented: EcrAuthenticator.auth_for, docker-py's credential store call, "
    "APIClient.login, and the naive/cli pre-task steps). The cli figure leaves out its connection read.",
    "ECR calls, sequential tasks: that many credential steps one after another on one host, each as a new "
    "task process (memory cache emptied), starting from a cold host. For cli only the token fetch is repeated "
    "(its delete+add subprocesses make no ECR call and cost seconds each).",
    "ECR calls, task processes at once: one parent imports what the approach needs, forks N task processes "
    "(as Airflow's executors do), releases them together on a cold host; each does the approach's credential "
    "step for one of the lab's two registries (alternating). Calls are counted by the emulator, by the "
    "approach's own access key. cli: the token fetch only, as above.",
    "Registry round trips for authentication: requests to the registry's /v2/ base endpoint (the pull's "
    "auth-challenge ping, and the credential check of a daemon login), counted from the registry's own log; "
    "'total' counts every request of the task (manifests included; the layers are already in the daemon).",
    "End to end: a real task through execute(): pull when absent, create, start, wait, logs, remove "
    "(network_mode none, no tmp mount), plus the approach's pre-task step; against a plain DockerOperator "
    "pulling the same image content from the lab's anonymous registry. 'pull': the image tag is removed "
    "before each task; 'image_local': it is present.",
    "cli on Airflow 3: the subprocesses and the connection read use this process's metadata database; a real "
    "Airflow 3 task has no database access, so there the pattern does not work at all.",
]


def versions(bench: Bench) -> dict[str, str]:
    from importlib.metadata import version

    import docker

    found = {name: version(name) for name in (
        "apache-airflow", "apache-airflow-providers-docker", "apache-airflow-providers-amazon", "docker",
        "boto3", "airflow-ecr",
    )}  # fmt: skip
    client = docker.APIClient(base_url=bench.docker_url)
    found["dockerd"] = str(client.version().get("Version"))
    client.close()
    helper = subprocess.run(["docker-credential-ecr-login", "-v"], capture_output=True, text=True, check=False)
    found["docker-credential-ecr-login"] = " ".join(
        line.split(":", 1)[1].strip() for line in helper.stdout.splitlines() if line.startswith("Version")
    )
    registry = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, check=False)
    found["docker-registry"] = registry.stdout.strip().split()[-1] if registry.stdout.strip() else "?"
    return found


def machine() -> dict[str, Any]:
    memory = ""
    with contextlib.suppress(OSError):
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")),
            "",
        )  # fmt: skip
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
    }


@contextlib.contextmanager
def task_logs_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Airflow's task logs) to ``path``; show its tail on failure."""
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
    except BaseException:
        tail = path.read_text(errors="replace").splitlines()[-30:]
        print("bench: last lines of the task logs:\n    " + "\n    ".join(tail), file=_CONSOLE)
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)
        _CONSOLE.close()
        _CONSOLE = sys.stdout


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from airflow_ecr.testing import lab as lab_module

    lab_dir = Path(args.lab or os.environ.get(lab_module.ENV_DIR) or lab_module.DEFAULT_DIR)
    if not lab_module.is_up(lab_dir):
        print(
            f"bench: no healthy lab at {lab_dir}: start one with `python -m airflow_ecr.testing.lab up --dir "
            f"{lab_dir}`, or run scripts/bench.sh (make bench), which does it all",
            file=sys.stderr,
        )
        return 2
    if args.out:
        out = Path(args.out)
    elif args.quick:
        out = Path(tempfile.mkdtemp(prefix="airflow-ecr-bench-quick-")) / "latest.json"
    else:
        out = HERE / "results" / "latest.json"
    # SIGTERM unwinds like Ctrl-C: the forwarder is stopped and the temp files removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="airflow-ecr-bench-"))
    bench = Bench(lab_module.load(lab_dir), work, args.quick)
    load_before = os.getloadavg()
    try:
        with task_logs_to(work / "tasks.log"):
            bench.setup_environment()
            figures = measure(bench, args.quick)
        report = {
            "benchmark": "airflow-ecr and its peers",
            "quick": args.quick,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_s": round(time.monotonic() - started, 1),
            "command": "python benchmarks/bench.py" + (" --quick" if args.quick else ""),
            "machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
            "versions": versions(bench),
            "approaches": APPROACHES,
            "figures": figures,
            "targets": evaluate_targets(figures),
            "notes": NOTES,
        }
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)
    from report import write_outputs  # benchmarks/report.py

    paths = write_outputs(report, out)
    print(Path(paths["md"]).read_text())
    say(f"written: {', '.join(str(p) for p in paths.values())} in {report['duration_s']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few repetitions (a smoke run, about a minute)")
    parser.add_argument("--lab", help="the lab directory (default: $AIRFLOW_ECR_LAB_DIR or /tmp/airflow-ecr-lab)")
    parser.add_argument(
        "--out",
        help="the JSON file; the .md and .png go next to it "
        "(default: benchmarks/results/latest.json; with --quick: latest.json in a temp dir)",
    )
    parser.add_argument("--zygote", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.zygote:
        return zygote_main(json.loads(args.zygote))
    if not os.environ.get(NAMESPACE_MARK):
        return reexec_in_private_mount_namespace(argv)
    return run(args)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
