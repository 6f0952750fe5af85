"""
A cold fleet against ECR's rate limit (issue 15): N hosts x M task processes starting together.

ECR limits ``GetAuthorizationToken`` per account and region to a bucket of 200 calls refilled at 20
per second; the lab's emulator applies that bucket (``airflow_ecr.testing.emulator.bucket``). Each
simulated host is its own cache directory and its own AWS access key (every key is of the same
account, as a fleet's hosts are: they share the bucket). Its M task processes are forked from the
benchmark's task-process parent (``measure.py``), all N x M of them released at once on cold hosts
(empty caches). Each does the approach's credential step for the lab's first registry and reports
when it had its token, or its error:

- ``ours``: ``EcrDockerHook.registry_auth()`` with airflow-ecr's retry policy (``[ecr]``
  defaults: standard mode, 7 attempts); a host's processes share one call (the host lock);
- ``ours_3_attempts``: the same with ``[ecr] token_max_attempts = 3``, botocore's default (what the
  token call had before);
- ``helper``: docker-py's ``resolve_authconfig()`` running ``docker-credential-ecr-login`` with the
  host's own cache directory (``AWS_ECR_CACHE_DIR``), its own retries (the AWS SDK's defaults);
- ``ours_helper``: the same, running ``docker-credential-airflow-ecr`` (``credHelpers`` in the host's
  own ``DOCKER_CONFIG``, ``[ecr] aws_conn_id`` and the host's cache directory): a task without
  ``docker_conn_id`` on a worker set up with ``airflow-ecr configure-docker``.

Scenarios: ``full``: the bucket full (nothing else used the account lately); ``drained``: the
bucket empty at the start, as right after another deployment of the account made its 200 calls;
``tenth``: a bucket of 20 refilled at 2 per second (ECR's shape at a tenth: the 2 cores here start
Python task processes too slowly to press ECR's own numbers the way a real fleet of that size does).
Figures per scenario and approach: tasks failed (target 0), ECR calls made, calls throttled, and
the time from the release to the last task's token. Each fleet starts after the previous one's
processes have all ended; the emulator's bucket is set back to full after the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab_env import SECRET, BenchEnv, BenchFailure, environment, one_line

# Scenario: (bucket capacity and refill, None for the emulator's own (ECR's); calls left in it at the release).
SCENARIOS: dict[str, tuple[tuple[int, float] | None, str]] = {
    "full": (None, "full"),
    "drained": (None, "empty"),
    # ECR's bucket at a tenth of its size and rate: this host's 2 cores start 400 Python task processes
    # more slowly than 50 hosts would (each with its own CPU), which paces their calls below 20 per
    # second; a 10x smaller bucket stands for a fleet 10x larger, or hosts starting 10x closer together.
    "tenth": ((20, 2.0), "full"),
}
APPROACHES = ("ours", "ours_3_attempts", "helper", "ours_helper")
# Docker's helper runs docker-credential-<name>: the name in credHelpers, per helper approach.
HELPER_NAMES = {"helper": "ecr-login", "ours_helper": "airflow-ecr"}
FLEET_CONN = "aws_fleet"
THROTTLED = "ThrottlingException"


def fleet_spec(plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "fleet",
        "hosts": plan["fleet_hosts"],
        "processes": plan["fleet_processes"],
        "scenarios": list(SCENARIOS),
        "approaches": list(APPROACHES),
        # Keys unique to this benchmark run: the lab's emulator keeps the calls of earlier runs.
        "nonce": secrets.token_hex(3).upper(),
    }


def host_key(nonce: str, run: int, host: int) -> str:
    """The access key of one simulated host in one fleet (the emulator counts calls by key)."""
    return f"FLEET{nonce}R{run:02d}H{host:05d}"


def host_env(env: BenchEnv, approach: str, key: str, cache_dir: Path) -> dict[str, str]:
    """The environment of a task process on one simulated host."""
    if approach == "helper":
        return {**env.helper_settings(cache_dir), "AWS_ACCESS_KEY_ID": key}
    # No config_kwargs retries in the connection: the [ecr] retry policy applies.
    connection = {
        "conn_type": "aws",
        "login": key,
        "password": SECRET,
        "extra": {"region_name": env.account["region"], "endpoint_url": env.emulator_url},
    }
    settings = {f"AIRFLOW_CONN_{FLEET_CONN.upper()}": json.dumps(connection), "AIRFLOW__ECR__CACHE_DIR": str(cache_dir)}
    if approach == "ours_helper":
        # What `airflow-ecr configure-docker <host>` writes, in this host's own Docker config.
        docker_config = cache_dir.with_name(cache_dir.name + "-docker")
        docker_config.mkdir(mode=0o700, parents=True, exist_ok=True)
        (docker_config / "config.json").write_text(json.dumps({"credHelpers": {env.host: HELPER_NAMES[approach]}}))
        settings.update(
            DOCKER_CONFIG=str(docker_config),
            PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            AIRFLOW__ECR__AWS_CONN_ID=FLEET_CONN,
        )
    if approach == "ours_3_attempts":
        settings["AIRFLOW__ECR__TOKEN_MAX_ATTEMPTS"] = "3"  # noqa: S105 - a number of attempts
    return settings


def credential_step(env: BenchEnv, approach: str) -> None:
    """One task process's credential step for the lab's first registry (raises on failure)."""
    if approach in HELPER_NAMES:
        import docker

        auth = docker.auth.resolve_authconfig(docker.auth.load_config(), env.host)
        if not auth or auth.get("Username") != "AWS":
            program = f"docker-credential-{HELPER_NAMES[approach]}"
            raise BenchFailure(approach, "fleet", f"{program} gave no credentials for {env.host}")
        return
    from approaches import forget_process_memory

    from airflow_ecr.hooks.docker import EcrDockerHook

    forget_process_memory()
    auth = EcrDockerHook(image=env.image, aws_conn_id=FLEET_CONN, base_url=env.docker_url).registry_auth()
    if auth.get("username") != "AWS":
        raise BenchFailure(approach, "fleet", f"no AWS login for {env.host}")


def one_fleet(
    env: BenchEnv, spec: dict[str, Any], approach: str, run: int, before_release: Callable[[], object]
) -> dict[str, Any]:
    """
    ``hosts`` x ``processes`` task processes forked now, released together; their reports.

    :param before_release: called once every process is forked, right before the release (the
        bucket is set then: forking takes long enough for a drained bucket to refill).
    """
    release_read, release_write = os.pipe()
    report_read, report_write = os.pipe()
    pids = []
    root = env.work / "fleet" / f"run-{run}"
    for host in range(spec["hosts"]):
        settings = host_env(env, approach, host_key(spec["nonce"], run, host), root / f"host-{host}")
        for _ in range(spec["processes"]):
            pid = os.fork()
            if pid == 0:  # a task process of this host
                code, line = 1, ""
                try:
                    os.close(release_write)
                    os.close(report_read)
                    with environment(settings):
                        os.read(release_read, 1)  # returns when the parent closes the pipe: all at once
                        credential_step(env, approach)
                    code, line = 0, f"ok {time.time():.6f}"
                except BenchFailure as failure:
                    line = f"failed {failure.cause}"
                except BaseException as exc:
                    line = f"failed {one_line(exc)}"
                finally:
                    with contextlib.suppress(BaseException):  # one short line: never interleaved
                        os.write(report_write, (line[:500].replace("\n", " ") + "\n").encode())
                    os._exit(code)
            pids.append(pid)
    before_release()
    released = time.time()
    os.close(release_write)
    os.close(report_write)
    with os.fdopen(report_read, "r", errors="replace") as report:
        lines = [line.strip() for line in report if line.strip()]
    exits = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    os.close(release_read)
    got = [float(line.split()[1]) for line in lines if line.startswith("ok ")]
    errors = [line.removeprefix("failed ").strip() for line in lines if line.startswith("failed")]
    return {
        "approach": approach,
        "run": run,
        "tasks": len(pids),
        "failed": sum(1 for code in exits if code != 0),
        "first_error": errors[0] if errors else "",
        "released": released,
        "last_token_s": round(max(got) - released, 3) if got else None,
        "ended": time.time(),
    }


def fleet_run(env: BenchEnv, spec: dict[str, Any]) -> dict[str, Any]:
    """Every scenario and approach, one fleet each, the bucket set to the scenario before each."""

    from airflow_ecr_lab import emulator_client

    admin = emulator_client(env.lab)
    bucket = admin.config()
    if not bucket.get("bucket_capacity"):
        raise BenchFailure("bench", "fleet", "the emulator's rate limit is off (bucket_capacity 0)")
    runs = []
    try:
        run = 0
        for scenario in spec["scenarios"]:
            numbers, start = SCENARIOS[scenario]
            capacity, refill = numbers or (bucket["bucket_capacity"], bucket["bucket_refill"])
            admin.config(bucket_capacity=capacity, bucket_refill=refill)
            for approach in spec["approaches"]:
                level = 0 if start == "empty" else capacity
                result = one_fleet(env, spec, approach, run, lambda level=level: admin.buckets(level=level))
                runs.append({**result, "scenario": scenario, "bucket": [capacity, refill]})
                run += 1
    finally:
        admin.config(bucket_capacity=bucket["bucket_capacity"], bucket_refill=bucket["bucket_refill"])
    return {**spec, "bucket": bucket, "runs": runs}


def fleet_figures(env: BenchEnv, result: dict[str, Any]) -> dict[str, Any]:
    """Per scenario and approach: tasks, failed, ECR calls, throttled, time to the last token (s)."""

    mark = host_key(result["nonce"], 0, 0).split("R")[0]
    from airflow_ecr_lab import emulator_client

    calls = [c for c in emulator_client(env.lab).calls() if str(c.get("access_key_id", "")).startswith(mark)]
    figures: dict[str, Any] = {
        "hosts": result["hosts"],
        "processes_per_host": result["processes"],
        "bucket": {k: result["bucket"][k] for k in ("bucket_capacity", "bucket_refill")},
        "scenarios": {},
    }
    for run in result["runs"]:
        prefix = host_key(result["nonce"], run["run"], 0).split("H")[0] + "H"
        mine = [c for c in calls if c["access_key_id"].startswith(prefix)]
        figures["scenarios"].setdefault(run["scenario"], {})[run["approach"]] = {
            "tasks": run["tasks"],
            "failed": run["failed"],
            "ecr_calls": len(mine),
            "throttled": sum(1 for c in mine if c["outcome"] == THROTTLED),
            "last_token_s": run["last_token_s"],
            "bucket": run["bucket"],
            "first_error": run["first_error"][:300],
        }
    return figures
