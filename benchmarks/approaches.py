"""
The approaches the benchmark compares, one class each:

- ``ours``: ``EcrDockerOperator`` (``EcrDockerHook.registry_auth()`` for the credential step);
- ``ours_secrets``: a plain ``DockerOperator`` whose connection comes from ``EcrDockerConnectionBackend``
  (credential-step figures only);
- ``helper``: ``amazon-ecr-credential-helper`` as a docker ``credHelpers`` entry, plain ``DockerOperator``;
- ``naive``: ``EcrHook.get_temporary_credentials()`` in every task, then ``docker login`` through the daemon;
- ``cli``: the community pattern: ``EcrHook.get_temporary_credentials()``, then ``airflow connections
  delete`` + ``airflow connections add --conn-password TOKEN`` as subprocesses, then a plain
  ``DockerOperator(docker_conn_id=...)`` (which logs in through the daemon);
- ``floor``: a plain ``DockerOperator`` on the lab's anonymous registry: no authentication at all.

Each class has the same jobs: :meth:`~Approach.step` (the credential work one new task adds, timed;
the same code runs in the benchmark's process and in a forked task process), :meth:`~Approach.make_cold`
(empty its host cache), :meth:`~Approach.task` (a real task through ``execute()``) and
:meth:`~Approach.one_registry` (the step of the task-processes-at-once figure). Every failure is a
:class:`~lab_env.BenchFailure`: approach, step, cause, on one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from lab_env import (
    BIN,
    CLI_CONN,
    SECRET,
    BenchEnv,
    BenchFailure,
    access_key,
    environment,
    expect,
    one_line,
    run_checked,
)


def forget_process_memory() -> None:
    """
    Empty airflow-ecr's process memory layer, as a new task process has it (in-process figures only:
    a forked task process starts with it empty). Best effort: ``airflow_ecr.process_state.reset``
    where it exists, else ``TokenCache.clear_memory`` (the trees before it), nothing otherwise.
    """
    import importlib

    import airflow_ecr

    try:
        clear = importlib.import_module("airflow_ecr.process_state").reset
    except ImportError:
        clear = getattr(airflow_ecr.TokenCache, "clear_memory", None)
    if clear is not None:
        clear()


def empty_directory(path: Path) -> None:
    """Remove what ``path`` holds, keeping the directory (a process may have checked it once, as a
    shared cache does: removing the directory itself would break that process's writes, not cool it)."""
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def get_connection(conn_id: str) -> Any:
    """An Airflow connection, read the way hooks read it (env, secrets backends, metadata database)."""
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 2
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]
    return BaseHook.get_connection(conn_id)


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


def instrument() -> None:
    """Time the credential code of each approach inside real tasks (this process only)."""
    import docker
    from docker.credentials import Store

    from airflow_ecr.hooks.docker import EcrAuthenticator

    CLOCK.wrap(EcrAuthenticator, "auth_for")  # ours: every token lookup of a pull
    CLOCK.wrap(Store, "get")  # the helper: docker-py running docker-credential-ecr-login
    CLOCK.wrap(docker.APIClient, "login")  # naive and CLI: the daemon /auth round trip


def task_options(approach: str, env: BenchEnv) -> dict[str, Any]:
    return {
        "task_id": f"bench_{approach}",
        "docker_url": env.docker_url,
        "network_mode": "none",
        "command": ["echo", "bench"],
        "auto_remove": "success",
        "mount_tmp_dir": False,
        "force_pull": False,
    }


# -- the approaches --------------------------------------------------------------------------------
class Approach:
    """One way to get ECR credentials into a Docker task."""

    name: ClassVar[str]
    label: ClassVar[str]
    # Keeps a host cache: its cold figure differs from its warm one.
    cached: ClassVar[bool] = False

    def __init__(self, env: BenchEnv) -> None:
        self.env = env

    def step(self) -> float:
        """The credential work one new task adds, timed (seconds)."""
        raise NotImplementedError

    def make_cold(self) -> None:
        """Empty the approach's host cache (nothing to do for those that keep none)."""

    def task(self) -> str:
        """One real task: the approach's pre-task step, then ``execute()``; what the container printed."""
        raise NotImplementedError

    def one_registry(self, account: dict[str, Any]) -> None:
        """The credential step for ``account``'s registry (the task-processes-at-once figure)."""
        raise NotImplementedError

    def explain(self, exc: BaseException) -> str:
        """The cause of a failure, on one line."""
        return one_line(exc)

    @contextlib.contextmanager
    def failing_as(self, step: str) -> Iterator[None]:
        """Turn any error inside into a :class:`BenchFailure` of this approach at ``step``."""
        try:
            yield
        except BenchFailure:
            raise
        except Exception as exc:
            raise BenchFailure(self.name, step, self.explain(exc)) from exc

    def timed_step(self, what: str) -> float:
        """:meth:`step`, failing in one line as ``what``."""
        with self.failing_as(what):
            return self.step()


class Floor(Approach):
    name, label = "floor", "DockerOperator, anonymous registry (floor)"

    def task(self) -> str:
        from airflow.providers.docker.operators.docker import DockerOperator

        return str(DockerOperator(image=self.env.floor_image, **task_options(self.name, self.env)).execute({}))


class Ours(Approach):
    name, label, cached = "ours", "airflow-ecr EcrDockerOperator", True

    def make_cold(self) -> None:
        forget_process_memory()
        empty_directory(self.env.ours_cache)

    def step(self) -> float:
        from airflow_ecr.hooks.docker import EcrDockerHook

        forget_process_memory()  # a new task process
        start = time.perf_counter()
        auth = EcrDockerHook(image=self.env.image, aws_conn_id="aws_ours", base_url=self.env.docker_url).registry_auth()
        elapsed = time.perf_counter() - start
        expect(
            auth.get("username") == "AWS",
            self.name,
            "EcrDockerHook.registry_auth()",
            f"no AWS login for {self.env.host} (got the keys {sorted(auth)})",
        )
        return elapsed

    def task(self) -> str:
        from airflow_ecr.operators.docker import EcrDockerOperator

        forget_process_memory()  # a new task process: only the host cache is warm
        options = task_options(self.name, self.env)
        return str(EcrDockerOperator(image=self.env.image, aws_conn_id="aws_ours", **options).execute({}))

    def one_registry(self, account: dict[str, Any]) -> None:
        from airflow_ecr.hooks.docker import EcrDockerHook

        forget_process_memory()
        image = f"{account['host']}/lab/busybox:1"
        auth = EcrDockerHook(image=image, aws_conn_id="aws_ours", base_url=self.env.docker_url).registry_auth()
        expect(auth.get("username") == "AWS", self.name, "registry_auth()", f"no AWS login for {account['host']}")


class OursSecrets(Approach):
    name, label, cached = "ours_secrets", "airflow-ecr secrets backend + DockerOperator", True

    def backend(self) -> Any:
        from airflow_ecr.secrets.ecr import EcrDockerConnectionBackend

        return EcrDockerConnectionBackend(
            endpoint_url=self.env.emulator_url,
            aws_access_key_id=access_key(self.name),
            aws_secret_access_key=SECRET,
            config_kwargs={"retries": {"total_max_attempts": 1}},
        )

    def make_cold(self) -> None:
        forget_process_memory()
        empty_directory(self.env.secrets_cache)

    def step(self) -> float:
        import docker

        backend = self.backend()  # Airflow builds its secrets backends once, when the process starts
        client = docker.APIClient(base_url=self.env.docker_url)
        forget_process_memory()
        from airflow_ecr.testing import running_task

        # The backend answers only inside a running task, as DockerOperator.execute is.
        with environment(self.env.secrets_settings()), running_task():
            start = time.perf_counter()
            conn = backend.get_connection(f"ecr:{self.env.host}")
            expect(conn is not None and conn.login == "AWS", self.name, "get_connection()", "no AWS login")
            # DockerHook logs in with the connection it gets (reauth by default): a daemon /auth call.
            client.login(username=conn.login, password=conn.password, registry=conn.host, reauth=True)
            elapsed = time.perf_counter() - start
        client.close()
        return elapsed


class Helper(Approach):
    name, label, cached = "helper", "amazon-ecr-credential-helper + DockerOperator", True

    def make_cold(self) -> None:
        shutil.rmtree(self.env.helper_cache, ignore_errors=True)

    def step(self) -> float:
        import docker

        with environment(self.env.helper_settings()):
            config = docker.auth.load_config()  # done by every APIClient, whatever the approach
            start = time.perf_counter()
            auth = docker.auth.resolve_authconfig(config, self.env.host)  # runs the helper, as a pull does
            elapsed = time.perf_counter() - start
        self.check(auth, self.env.host, self.env.helper_cache)
        return elapsed

    def check(self, auth: Any, host: str, cache_dir: Path) -> None:
        if not auth or auth.get("Username") != "AWS":
            raise BenchFailure(self.name, "docker-py resolve_authconfig()", self.no_credentials(host, cache_dir))

    def no_credentials(self, host: str, cache_dir: Path) -> str:
        why = helper_log_error(cache_dir)
        return f"docker-credential-ecr-login gave no credentials for {host}" + (f": {why}" if why else "")

    def explain(self, exc: BaseException) -> str:
        why = helper_log_error(self.env.helper_cache)
        return one_line(exc) + (f"; the helper's log says: {why}" if why else "")

    def preflight(self) -> None:
        """Run the helper once, alone, on a scratch cache: the namespace's wiring works, or one line says why."""
        scratch = self.env.work / "helper-preflight"
        settings = self.env.helper_settings(scratch)
        with self.failing_as("preflight: docker-credential-ecr-login get"):
            done = subprocess.run(
                ["docker-credential-ecr-login", "get"],
                input=self.env.host,
                env=dict(os.environ, **settings),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        if done.returncode != 0 or '"Username":"AWS"' not in done.stdout.replace(" ", ""):
            said = (done.stdout.strip() or done.stderr.strip()).splitlines()[-1:] or [""]
            why = helper_log_error(scratch) or said[0]
            raise BenchFailure(
                self.name,
                "preflight: docker-credential-ecr-login get",
                f"exit {done.returncode} for {self.env.host}: {why}",
            )
        shutil.rmtree(scratch, ignore_errors=True)

    def task(self) -> str:
        from airflow.providers.docker.operators.docker import DockerOperator

        with environment(self.env.helper_settings()):
            return str(DockerOperator(image=self.env.image, **task_options(self.name, self.env)).execute({}))

    def one_registry(self, account: dict[str, Any]) -> None:
        import docker

        # The task processes at once run with their own cold cache (AWS_ECR_CACHE_DIR set by the parent).
        auth = docker.auth.resolve_authconfig(docker.auth.load_config(), account["host"])
        self.check(auth, account["host"], Path(os.environ.get("AWS_ECR_CACHE_DIR", self.env.helper_cache)))


_HELPER_ERROR = re.compile(r'level=error msg="([^"]*)"(?: error="((?:[^"\\]|\\.)*)")?')


def helper_log_error(cache_dir: Path) -> str:
    """The last error the credential helper logged (``<cache dir>/log/ecr-login.log``), or ''."""
    with contextlib.suppress(OSError):
        text = (cache_dir / "log" / "ecr-login.log").read_text(errors="replace")
        found = _HELPER_ERROR.findall(text)
        if found:
            message, error = found[-1]
            return f"{message}: {error.replace(chr(92) + chr(34), chr(34))}" if error else message
    return ""


class Naive(Approach):
    name, label = "naive", "EcrHook + docker login in every task"

    def login(self, client: Any) -> None:
        """The naive glue: a token from the amazon provider's EcrHook, then a daemon login."""
        from airflow.providers.amazon.aws.hooks.ecr import EcrHook

        account = self.env.account
        hook = EcrHook(aws_conn_id="aws_naive", region_name=account["region"])
        for credentials in hook.get_temporary_credentials(registry_ids=[account["account_id"]]):
            client.login(
                username=credentials.username,
                password=credentials.password,
                registry=credentials.proxy_endpoint,
                reauth=True,
            )

    def step(self) -> float:
        import docker

        client = docker.APIClient(base_url=self.env.docker_url)
        start = time.perf_counter()
        self.login(client)
        elapsed = time.perf_counter() - start
        client.close()
        return elapsed

    def task(self) -> str:
        from airflow.providers.amazon.aws.hooks.ecr import EcrHook
        from airflow.providers.docker.operators.docker import DockerOperator

        operator = DockerOperator(image=self.env.image, **task_options(self.name, self.env))
        account = self.env.account
        with CLOCK.timing():
            hook = EcrHook(aws_conn_id="aws_naive", region_name=account["region"])
            (credentials,) = hook.get_temporary_credentials(registry_ids=[account["account_id"]])
        # The login is timed by the APIClient.login wrapper.
        operator.cli.login(
            username=credentials.username,
            password=credentials.password,
            registry=credentials.proxy_endpoint,
            reauth=True,
        )
        return str(operator.execute({}))

    def one_registry(self, account: dict[str, Any]) -> None:
        import docker
        from airflow.providers.amazon.aws.hooks.ecr import EcrHook

        hook = EcrHook(aws_conn_id="aws_naive", region_name=account["region"])
        (credentials,) = hook.get_temporary_credentials(registry_ids=[account["account_id"]])
        client = docker.APIClient(base_url=self.env.docker_url)
        client.login(
            username=credentials.username,
            password=credentials.password,
            registry=credentials.proxy_endpoint,
            reauth=True,
        )
        client.close()


class Cli(Approach):
    name, label = "cli", "CLI delete+add, then DockerOperator"

    def fetch(self, account: dict[str, Any] | None = None) -> str:
        """The token fetch alone (its delete+add subprocesses make no ECR call and cost seconds each)."""
        from airflow.providers.amazon.aws.hooks.ecr import EcrHook

        account = account or self.env.account
        hook = EcrHook(aws_conn_id="aws_cli", region_name=account["region"])
        (credentials,) = hook.get_temporary_credentials(registry_ids=[account["account_id"]])
        return str(credentials.password)

    def write(self) -> None:
        """The community operator's body: fetch, then ``airflow connections delete`` + ``add``."""
        password = self.fetch()
        airflow = str(BIN / "airflow")
        env = dict(os.environ)
        # The widely copied operator ignores both return codes; the delete fails when nothing is there.
        subprocess.run([airflow, "connections", "delete", CLI_CONN], env=env, capture_output=True, check=False)
        run_checked(
            [
                airflow, "connections", "add", CLI_CONN, "--conn-type", "docker", "--conn-host", self.env.host,
                "--conn-login", "AWS", "--conn-password", password,
            ],
            env,
            self.name,
            "airflow connections add",
        )  # fmt: skip

    def step(self) -> float:
        import docker

        client = docker.APIClient(base_url=self.env.docker_url)
        start = time.perf_counter()
        self.write()
        conn = get_connection(CLI_CONN)
        client.login(username=conn.login, password=conn.password, registry=conn.host, reauth=True)
        elapsed = time.perf_counter() - start
        client.close()
        return elapsed

    def task(self) -> str:
        from airflow.providers.docker.operators.docker import DockerOperator

        with CLOCK.timing():
            self.write()
        options = task_options(self.name, self.env)
        return str(DockerOperator(image=self.env.image, docker_conn_id=CLI_CONN, **options).execute({}))

    def one_registry(self, account: dict[str, Any]) -> None:
        self.fetch(account)  # the CLI pattern's writes make no ECR call: left out here


ALL: tuple[type[Approach], ...] = (Ours, OursSecrets, Helper, Naive, Cli, Floor)
LABELS = {cls.name: cls.label for cls in ALL}
PEERS = ("cli", "helper", "naive")


def build(env: BenchEnv) -> dict[str, Approach]:
    """One instance of every approach, by name."""
    return {cls.name: cls(env) for cls in ALL}
