"""
Benchmark: what a cached ECR credential lookup adds to a task.

Runs the real code path (``EcrAuthenticator`` -> ``TokenCache`` -> ``AwsConnectionTokenSource``
through the amazon provider and boto3 over HTTP) against the bundled ECR emulator, and reports
median and p95 per lookup for:

- warm memory: the same process looks up again (a second pull in one task);
- warm host cache: a new task process (empty memory, connection read again, file cache hit);
- cold: a cache miss, i.e. one ``GetAuthorizationToken`` call over HTTP.

Usage: ``python benchmarks/credential_lookup.py [--quick] [--out FILE]``
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def measure(fn, repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "n": repeat,
        "median_ms": statistics.median(samples),
        "p95_ms": samples[int(0.95 * (repeat - 1))],
        "min_ms": samples[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    from airflow_ecr.hooks.docker import EcrAuthenticator
    from airflow_ecr.registry import parse_registry_host
    from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount
    from airflow_ecr.tokens import AwsConnectionTokenSource, TokenCache

    account = EmulatedAccount("111111111111", "eu-west-1", str(work / "htpasswd"))
    with EcrEmulator([account]) as emulator:
        os.environ["AIRFLOW_CONN_AWS_BENCH"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": "eu-west-1", "endpoint_url": emulator.url},
            }
        )
        registry = parse_registry_host(account.host)
        cache = TokenCache()

        def new_task_lookup() -> None:
            TokenCache.clear_memory()
            EcrAuthenticator([registry], AwsConnectionTokenSource("aws_bench"), cache).auth_for(registry.host)

        issued = []

        def cold_lookup() -> None:
            # Forget the last token first, so that every sample is a miss and one API call.
            source = AwsConnectionTokenSource("aws_bench")
            cache.invalidate(source, registry, issued[-1])
            issued.append(cache.get_one(source, registry))

        new_task_lookup()  # fill the caches
        issued.append(cache.get_one(AwsConnectionTokenSource("aws_bench"), registry))
        warm = EcrAuthenticator([registry], AwsConnectionTokenSource("aws_bench"), cache)
        calls_before = len(emulator.calls())
        results = {
            "warm_memory": measure(lambda: cache.get_one(warm.source, registry), warm_n),
            "warm_host_cache_new_task": measure(new_task_lookup, warm_n // 5),
        }
        results["ecr_calls_during_warm_runs"] = len(emulator.calls()) - calls_before
        calls_before = len(emulator.calls())
        results["cold_api_call"] = measure(cold_lookup, cold_n)
        results["ecr_calls_during_cold_runs"] = len(emulator.calls()) - calls_before

    results["python"] = sys.version.split()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'lookup':<28}{'median ms':>12}{'p95 ms':>10}{'n':>7}")
    for name in ("warm_memory", "warm_host_cache_new_task", "cold_api_call"):
        r = results[name]
        print(f"{name:<28}{r['median_ms']:>12.3f}{r['p95_ms']:>10.3f}{r['n']:>7}")
    print(f"ECR calls during warm runs: {results['ecr_calls_during_warm_runs']} (must be 0)")
    print(f"ECR calls during cold runs: {results['ecr_calls_during_cold_runs']} (one per lookup)")
    return 0 if results["ecr_calls_during_warm_runs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
