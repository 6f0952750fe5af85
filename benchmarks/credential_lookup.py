"""
Benchmark: what a cached ECR credential lookup adds to a task, in one process.

Runs the real code path (``EcrDockerHook.registry_auth()`` -> the token cache -> the amazon
provider and boto3 over HTTP) against the bundled ECR emulator, with public entry points only, and
reports the spread per lookup (``stats.summary``, in ms) for:

- warm memory: the same hook looks up again (a second pull in one task);
- warm host cache: a new hook with a new, empty token cache (as in a new task process; the
  connection read again, the host file cache hit);
- cold: a cache miss (an empty ``[ecr] cache_dir`` each time), i.e. one ``GetAuthorizationToken`` call.

What a new task *process* pays (imports done, nothing else warm) is ``bench.py --only per-process``.

Usage: ``python benchmarks/credential_lookup.py [--quick] [--out FILE]``
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from approaches import forget_process_memory
from stats import summary, time_samples

ACCOUNT_ID, REGION = "111111111111", "eu-west-1"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0].strip())
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "credential_lookup.json"))
    args = parser.parse_args()
    warm_n, cold_n = (50, 5) if args.quick else (5000, 100)

    work = Path(tempfile.mkdtemp(prefix="airflow-ecr-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # leave nothing in /tmp
    os.environ.update(
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__ECR__CACHE_DIR=str(work / "cache"),
    )
    import airflow_ecr
    from airflow_ecr.hooks.docker import EcrDockerHook
    from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount

    account = EmulatedAccount(ACCOUNT_ID, REGION, str(work / "htpasswd"))
    image = f"{account.host}/lab/busybox:1"
    with EcrEmulator([account]) as emulator:
        os.environ["AIRFLOW_CONN_AWS_BENCH"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": REGION, "endpoint_url": emulator.url},
            }
        )

        def new_hook() -> EcrDockerHook:
            forget_process_memory()
            return EcrDockerHook(image=image, aws_conn_id="aws_bench", token_cache=airflow_ecr.TokenCache())

        def new_task_lookup() -> None:
            new_hook().registry_auth()

        cold_dirs = iter(range(10**9))

        def cold_lookup() -> None:
            os.environ["AIRFLOW__ECR__CACHE_DIR"] = str(work / f"cold-{next(cold_dirs)}")
            try:
                new_hook().registry_auth()
            finally:
                os.environ["AIRFLOW__ECR__CACHE_DIR"] = str(work / "cache")

        warm = new_hook()
        warm.registry_auth()  # fill the caches
        calls_before = len(emulator.calls())
        results: dict[str, Any] = {
            "warm_memory": summary(time_samples(warm.registry_auth, warm_n), unit="ms"),
            "warm_host_cache_new_task": summary(time_samples(new_task_lookup, warm_n // 5), unit="ms"),
        }
        results["ecr_calls_during_warm_runs"] = len(emulator.calls()) - calls_before
        calls_before = len(emulator.calls())
        results["cold_api_call"] = summary(time_samples(cold_lookup, cold_n), unit="ms")
        results["ecr_calls_during_cold_runs"] = len(emulator.calls()) - calls_before

    results["python"] = sys.version.split()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'lookup':<28}{'median ms':>12}{'p90 ms':>10}{'n':>7}")
    for name in ("warm_memory", "warm_host_cache_new_task", "cold_api_call"):
        r = results[name]
        print(f"{name:<28}{r['median']:>12.4g}{r['p90']:>10.4g}{r['n']:>7}")
    print(f"ECR calls during warm runs: {results['ecr_calls_during_warm_runs']} (must be 0)")
    print(f"ECR calls during cold runs: {results['ecr_calls_during_cold_runs']} (one per lookup)")
    return 0 if results["ecr_calls_during_warm_runs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
