"""
Helper against helper (issue 25): ``docker-credential-airflow-ecr`` side by side with
``docker-credential-ecr-login`` (amazon-ecr-credential-helper, Go), each run as Docker runs it: a
new process per ``get``, the registry host on stdin.

- warm ``get`` per process: both caches hold a valid token; interleaved round by round with two
  floors, a bare interpreter start of the venv's Python (``python -c pass``) and one without the
  ``site`` module (``python -S -c pass``), since a Python helper cannot start faster than those;
- cold, N processes at once: N ``get`` processes started together on an empty cache (N tasks of a
  host pulling at once after a restart): failures, ``GetAuthorizationToken`` calls counted by the
  lab's emulator (by each helper's own access key), and the time until the last one answered.

The Go helper reaches the emulator through the benchmark's TLS forwarder (``lab_env.BenchEnv``);
ours through an AWS connection in the environment (``AIRFLOW_CONN_*``), as ``[ecr] aws_conn_id``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab_env import SECRET, BenchEnv, BenchFailure, say
from stats import summary

OURS = "docker-credential-airflow-ecr"
GO = "docker-credential-ecr-login"
CONN_ID = "aws_helper_bench"
KINDS = ("python_pass", "python_S_pass", "ours", "go")
LABELS = {
    "python_pass": "`python -c pass` (the venv's interpreter: the floor of any Python helper)",
    "python_S_pass": "`python -S -c pass` (without the site module)",
    "ours": f"`{OURS} get` (airflow-ecr)",
    "go": f"`{GO} get` (amazon-ecr-credential-helper {{go_version}}, Go)",
}


def helper_plan(quick: bool) -> dict[str, Any]:
    """Rounds of the warm figures and the size of the cold burst."""
    return {"only": "credential-helper", "helper_rounds": 5 if quick else 60, "helper_processes": 8 if quick else 32}


def _clean_environment() -> dict[str, str]:
    """This process's environment without anything that selects an Airflow, AWS or Docker setup."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "DOCKER_", "_AIRFLOW"))}


def ours_env(env: BenchEnv, cache_dir: Path, access_key: str) -> dict[str, str]:
    """A worker's environment for our helper: its AWS connection, its host cache, Airflow quiet."""
    connection = {
        "conn_type": "aws",
        "login": access_key,
        "password": SECRET,
        "extra": {"region_name": env.account["region"], "endpoint_url": env.emulator_url},
    }
    return {
        **_clean_environment(),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "AIRFLOW_HOME": str(env.work / "helper-airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        "AIRFLOW__ECR__CACHE_DIR": str(cache_dir),
        "AIRFLOW__ECR__AWS_CONN_ID": CONN_ID,
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(connection),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def go_env(env: BenchEnv, cache_dir: Path, access_key: str) -> dict[str, str]:
    return {**_clean_environment(), **env.helper_settings(cache_dir), "AWS_ACCESS_KEY_ID": access_key}


def _get(argv: list[str], environ: dict[str, str], host: str) -> subprocess.Popen[bytes]:
    """A ``get`` process, its input already written and closed (so that N of them run at once)."""
    proc = subprocess.Popen(argv, env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write(host.encode())
    proc.stdin.close()
    proc.stdin = None  # written and closed: communicate() must not touch it again
    return proc


def _answered(kind: str, proc: subprocess.Popen[bytes]) -> bool:
    """Whether ``proc`` answered ``get`` with an AWS login (its secret is never kept or shown)."""
    out, _ = proc.communicate(timeout=300)
    if kind.startswith("python"):
        return proc.returncode == 0
    try:
        return proc.returncode == 0 and json.loads(out).get("Username") == "AWS"
    except ValueError:
        return False


def _timed(kind: str, argv: list[str], environ: dict[str, str], host: str) -> float:
    start = time.perf_counter()
    proc = _get(argv, environ, host)
    if not _answered(kind, proc):
        raise BenchFailure(kind, "warm get", f"{argv[0]} gave no AWS login for {host} (exit {proc.returncode})")
    return (time.perf_counter() - start) * 1000


def cold_burst(kind: str, argv: list[str], environ: dict[str, str], host: str, processes: int) -> dict[str, Any]:
    """``processes`` ``get`` processes started together on an empty cache: failures and time to the last answer."""
    start = time.perf_counter()
    procs = [_get(argv, environ, host) for _ in range(processes)]
    answered = [_answered(kind, proc) for proc in procs]
    return {"processes": processes, "failed": answered.count(False), "last_answer_s": time.perf_counter() - start}


def credential_helper_figures(env: BenchEnv, plan: dict[str, Any]) -> dict[str, Any]:
    """Warm ``get`` per process (with the interpreter floors) and the cold burst, for both helpers."""

    if shutil.which(OURS, path=str(Path(sys.executable).parent)) is None:
        raise BenchFailure("ours", "setup", f"{OURS} is not installed in {Path(sys.executable).parent}")
    from airflow_ecr_lab import emulator_client

    admin = emulator_client(env.lab)
    nonce = secrets.token_hex(3).upper()
    host = env.host
    python = str(Path(sys.executable))
    ours_bin = str(Path(sys.executable).parent / OURS)
    commands = {
        "python_pass": ([python, "-c", "pass"], _clean_environment()),
        "python_S_pass": ([python, "-S", "-c", "pass"], _clean_environment()),
        "ours": ([ours_bin, "get"], ours_env(env, env.work / "ch-ours-warm", f"CHOURS{nonce}W")),
        "go": ([GO, "get"], go_env(env, env.work / "ch-go-warm", f"CHGO{nonce}W")),
    }
    say(f"helper against helper: warm get, {plan['helper_rounds']} rounds of {', '.join(KINDS)}")
    for kind in ("ours", "go"):  # the first get of each fills its cache (cold), not timed
        _timed(kind, *commands[kind], host)
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for round_ in range(plan["helper_rounds"]):
        order = KINDS[round_ % len(KINDS) :] + KINDS[: round_ % len(KINDS)]  # no kind always first
        for kind in order:
            samples[kind].append(_timed(kind, *commands[kind], host))
    warm = {kind: summary(samples[kind], "ms") for kind in KINDS}
    warm_calls = {
        "ours": len(admin.calls(f"CHOURS{nonce}W")),
        "go": len(admin.calls(f"CHGO{nonce}W")),
    }

    processes = plan["helper_processes"]
    say(f"helper against helper: {processes} cold get processes at once, each helper")
    cold: dict[str, Any] = {}
    for kind, make_env, argv in (("ours", ours_env, [ours_bin, "get"]), ("go", go_env, [GO, "get"])):
        key = f"CH{kind.upper()}{nonce}C"
        burst = cold_burst(kind, argv, make_env(env, env.work / f"ch-{kind}-cold", key), host, processes)
        calls = admin.calls(key)
        cold[kind] = {
            **burst,
            "last_answer_s": round(burst["last_answer_s"], 2),
            "ecr_calls": len(calls),
            "throttled": sum(1 for c in calls if c.get("outcome") != "ok"),
        }
    ours_ms, go_ms = warm["ours"].get("median"), warm["go"].get("median")
    return {
        "host": host,
        "warm_get_ms": warm,
        "warm_ecr_calls": warm_calls,
        "warm_ratio_ours_to_go": round(ours_ms / go_ms, 2) if ours_ms and go_ms else None,
        "cold_burst": cold,
    }


def helper_targets(figures: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Issue 25: warm within 2x of the Go helper; single flight where it has none."""
    if not figures:
        return []
    ratio = figures["warm_ratio_ours_to_go"]
    floor = figures["warm_get_ms"]["python_pass"].get("median")
    go = figures["warm_get_ms"]["go"].get("median")
    ours = figures["cold_burst"]["ours"]
    return [
        {
            "target": "warm get within 2x of the Go helper (median, a new process per get)",
            "measured": f"{ratio}x (a bare Python start alone: {floor / go:.2g}x)" if ratio and floor and go else "n/a",
            "met": ratio is not None and ratio <= 2,
        },
        {
            "target": f"{ours['processes']} cold get processes at once: 1 ECR call, 0 failed",
            "measured": f"{ours['ecr_calls']} call(s), {ours['failed']} failed",
            "met": ours["ecr_calls"] == 1 and ours["failed"] == 0,
        },
    ]
