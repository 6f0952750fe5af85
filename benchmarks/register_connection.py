"""
Benchmark: writing a fresh ECR token into an Airflow docker connection, two ways, same run.

- ``EcrCredentialRegisterOperator`` (upsert from the task's process) next to the community
  operator's body (``GetAuthorizationToken``, then ``airflow connections delete`` and ``airflow
  connections add --conn-password TOKEN`` as subprocesses): the time of ``execute()`` in an
  already started task process.
- ``airflow-ecr refresh-connection`` (one process) next to the cron version of the community way
  (fetch the token in one process, then the two ``airflow connections`` processes): wall time
  from the first process start to the last exit.

Both sides fetch a new token every time (token cache off) from the bundled ECR emulator over HTTP,
and write to the same SQLite metadata database of a private ``AIRFLOW_HOME``: the difference is the
write. With an Airflow 2.11 environment the operator and the CLI write through the ORM; with an
Airflow 3 environment through the REST API of a real ``airflow api-server`` started on loopback
(the community subprocesses then run from this process, which has database access; a real Airflow 3
task has none). Each run replaces its Airflow version's entry in
``benchmarks/results/register_connection.json``::

    .venvs/af2/bin/python benchmarks/register_connection.py [--quick] [--runs N] [--out FILE]
    .venvs/af3/bin/python benchmarks/register_connection.py [--quick] [--runs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from approaches import forget_process_memory
from stats import summary, time_samples

from airflow_ecr_lab.processes import stop_process

BIN = Path(sys.executable).parent
CONN_ID = "docker_ecr"
ACCOUNT_ID, REGION = "111111111111", "eu-west-1"
HOST = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com"

# The token fetch of the cron version, standing in for `aws ecr get-login-password`.
FETCH_SCRIPT = """
import base64, boto3
data = boto3.client("ecr", region_name="eu-west-1").get_authorization_token(registryIds=["111111111111"])
print(base64.b64decode(data["authorizationData"][0]["authorizationToken"]).decode().split(":", 1)[1])
"""


def measure(fn: Callable[[], None], runs: int) -> dict[str, Any]:
    return summary(time_samples(fn, runs, unit="s"), unit="s")


def run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{args[0]} {args[1]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 runs of each (a smoke run)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each way (default 5)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "register_connection.json"))
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs

    work = Path(tempfile.mkdtemp(prefix="airflow-ecr-bench-register-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # leave nothing in /tmp
    os.environ.update(
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{work / 'airflow' / 'airflow.db'}",
        # Every run fetches a new token: the comparison is about the write.
        AIRFLOW__ECR__CACHE_ENABLED="False",
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
        # Airflow 3's api-server and its simple auth manager (ignored by Airflow 2).
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(32),
    )
    import airflow

    from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount

    airflow_3 = int(airflow.__version__.split(".")[0]) >= 3
    account = EmulatedAccount(ACCOUNT_ID, REGION, str(work / "htpasswd"))
    with EcrEmulator([account]) as emulator:
        os.environ["AIRFLOW_CONN_AWS_BENCH"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": REGION, "endpoint_url": emulator.url},
            }
        )
        env = dict(os.environ)
        # The boto3 chain of the CLI and of the cron version's token fetch.
        env.update(
            {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": emulator.url}
        )
        run([str(BIN / "airflow"), "db", "migrate"], env)
        cli_api: list[str] = []
        api = None
        if airflow_3:
            api, api_conn = start_api_server(env, work)
            os.environ["AIRFLOW_CONN_AIRFLOW_API"] = env["AIRFLOW_CONN_AIRFLOW_API"] = api_conn
            cli_api = ["--api-conn-id", "airflow_api"]
        try:
            results = run_all(env, runs, cli_api)
        finally:
            if api is not None:
                stop_process(api, group=True, timeout=15)
    version = f"airflow {airflow.__version__}"
    report = {
        "benchmark": "register_connection",
        "python": platform.python_version(),
        "host": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "quick": args.quick,
        "database": "sqlite",
        "writer": "REST API (real api-server)" if airflow_3 else "ORM",
        "results": results,
        "notes": "execute(): time inside an already started process; cli/cron: wall time of all the "
        "processes involved. Both ways fetch one new token per run from the local ECR emulator."
        + (
            " Airflow 3: the delete+add subprocesses run from the benchmark's process, which has database "
            "access; a real Airflow 3 task has none, so there the community way does not work at all."
            if airflow_3
            else ""
        ),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # One file for both Airflow versions: each run replaces its own version's entry.
    try:
        merged = json.loads(out.read_text())
        merged = merged if isinstance(merged, dict) and "benchmark" not in merged else {}
    except (OSError, ValueError):
        merged = {}
    merged[version] = report
    out.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    print(version)
    for name, value in results.items():
        print(f"{name:36s} median {value['median']:7.3f} s  (min {value['min']:.3f}, max {value['max']:.3f})")
    print(f"written to {out}")
    return 0


def run_all(env: dict[str, str], runs: int, cli_api: list[str]) -> dict[str, dict[str, Any]]:
    """Measure the four ways, in the same process and environment."""
    from airflow_ecr.operators.credentials import EcrCredentialRegisterOperator

    operator = EcrCredentialRegisterOperator(
        task_id="refresh_ecr",
        conn_id_name=CONN_ID,
        region_name=REGION,
        register_ids=[ACCOUNT_ID],
        aws_conn_id="aws_bench",
    )

    def register_task() -> None:
        forget_process_memory()  # a real GetAuthorizationToken call, as the community way makes
        operator.execute({})

    def community_task() -> None:
        from airflow.providers.amazon.aws.hooks.ecr import EcrHook

        (credentials,) = EcrHook(aws_conn_id="aws_bench", region_name=REGION).get_temporary_credentials(
            registry_ids=[ACCOUNT_ID]
        )
        airflow_cli = str(BIN / "airflow")
        # What the widely copied operator does (it ignores the return codes; we check them).
        run([airflow_cli, "connections", "delete", CONN_ID], env)
        run(
            [
                airflow_cli, "connections", "add", CONN_ID, "--conn-type", "docker",
                "--conn-host", HOST, "--conn-login", credentials.username,
                "--conn-password", credentials.password,
            ],
            env,
        )  # fmt: skip

    def cli_refresh() -> None:
        run([str(BIN / "airflow-ecr"), "refresh-connection", "--conn-id", CONN_ID, "--registry", HOST, *cli_api], env)

    def cron_delete_add() -> None:
        token = run([sys.executable, "-c", FETCH_SCRIPT], env).strip()
        run([str(BIN / "airflow"), "connections", "delete", CONN_ID], env)
        run(
            [
                str(BIN / "airflow"), "connections", "add", CONN_ID, "--conn-type", "docker",
                "--conn-host", HOST, "--conn-login", "AWS", "--conn-password", token,
            ],
            env,
        )  # fmt: skip

    register_task()  # warm-up: imports, first connection
    results = {
        "register_task_execute": measure(register_task, runs),
        "community_task_execute_delete_add": measure(community_task, runs),
        "cli_refresh_connection": measure(cli_refresh, runs),
        "cron_delete_add": measure(cron_delete_add, runs),
    }
    return results


def start_api_server(env: dict[str, str], work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A real ``airflow api-server`` on loopback (simple auth manager); the ``airflow_api`` connection."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(work / "api-server.log", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [str(BIN / "airflow"), "api-server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 120
    while True:
        try:
            with opener.open(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc, group=True, timeout=15)
                raise SystemExit(f"the api-server did not start; see {work / 'api-server.log'}") from None
            time.sleep(0.5)
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    password = json.loads(passwords.read_text())["admin"]
    conn = {"conn_type": "http", "host": f"http://127.0.0.1:{port}", "login": "admin", "password": password}
    return proc, json.dumps(conn)


if __name__ == "__main__":
    sys.exit(main())
