"""
Benchmark: what a connection lookup through EcrDockerConnectionBackend costs, and how many ECR calls N
task processes on one worker make. Runs against the in-process ECR emulator (boto3 over HTTP).

- unrecognised id: returns None (no AWS call, no file read);
- warm memory: the same process looks the connection up again;
- warm host cache: a new task process (empty memory, host file cache hit), simulated by emptying
  the process's memory layer before each lookup (``approaches.forget_process_memory``);
- N processes: N fresh Python processes (as N task processes) start together with an empty host
  cache and each resolve the connection once; the emulator counts GetAuthorizationToken calls.

Times are summarized by ``stats.summary`` (in microseconds).

Usage: ``python benchmarks/secrets_lookup.py [--quick] [--processes N] [--out FILE]``
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from approaches import forget_process_memory
from stats import summary, time_samples

CHILD = r"""
import os, sys, time
from airflow_ecr.secrets.ecr import EcrDockerConnectionBackend
from airflow_ecr.testing import running_task
b = EcrDockerConnectionBackend(endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2], aws_secret_access_key="x")
while time.time() < float(sys.argv[3]):  # start together
    time.sleep(0.001)
with running_task():  # the backend answers only inside a running task
    conn = b.get_connection(sys.argv[4])
if conn is None or conn.login != "AWS":
    sys.exit(f"secrets_lookup task process: no AWS login for {sys.argv[4]}")
"""


def measure(fn: Any, n: int) -> dict[str, Any]:
    return summary(time_samples(fn, n, unit="us"), unit="us")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "secrets_lookup.json"))
    args = parser.parse_args()
    n = 200 if args.quick else 5000
    work = Path(tempfile.mkdtemp(prefix="ecr-secrets-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # leave nothing in /tmp
    os.environ.update(
        AIRFLOW_HOME=str(work / "home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__ECR__CACHE_DIR=str(work / "cache"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    import logging

    logging.disable(logging.INFO)  # the lookup's INFO line costs a handler call in Airflow, not here
    from airflow_ecr.secrets.ecr import EcrDockerConnectionBackend
    from airflow_ecr.testing import running_task
    from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount

    host = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
    conn_id = f"ecr:{host}"
    results: dict[str, Any] = {}
    with EcrEmulator([EmulatedAccount("111111111111", "eu-west-1")]) as emu:
        backend = EcrDockerConnectionBackend(
            endpoint_url=emu.url,
            aws_access_key_id="AKIABENCH",
            aws_secret_access_key="x",  # noqa: S106 - the emulator takes any key
        )
        try:  # the Connection class of an Airflow 3 task process
            from airflow.sdk.definitions.connection import Connection

            backend._set_connection_class(Connection)
        except ImportError:
            pass
        # A task's lookups happen inside its running context (DockerOperator.execute).
        with running_task():
            backend.get_connection(conn_id)  # cold: imports, session, one call
            results["unrecognised_id"] = measure(lambda: backend.get_connection("postgres_default"), n)
            results["warm_memory"] = measure(lambda: backend.get_connection(conn_id), n)

            def from_host_cache():
                forget_process_memory()
                backend.get_connection(conn_id)

            results["warm_host_cache"] = measure(from_host_cache, n)
        results["calls_so_far"] = len(emu.calls())

        # N task processes on one worker, empty host cache, starting together.
        os.environ["AIRFLOW__ECR__CACHE_DIR"] = str(work / "cache-processes")
        emu.reset()
        start_at = time.time() + 8
        procs = [
            subprocess.Popen([sys.executable, "-c", CHILD, emu.url, "AKIAPROC", str(start_at), conn_id])
            for _ in range(args.processes)
        ]
        codes = [p.wait(120) for p in procs]
        results[f"{args.processes}_processes_together"] = {
            "exit_codes_ok": all(c == 0 for c in codes),
            "ecr_calls": len(emu.calls()),
        }
    import airflow

    results["airflow"] = airflow.__version__
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    together = results[f"{args.processes}_processes_together"]
    return 0 if together["exit_codes_ok"] and together["ecr_calls"] == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
