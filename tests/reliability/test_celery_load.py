"""
Load on a real distributed deployment: Airflow 3 with the CeleryExecutor (PostgreSQL metadata
database, Redis broker, both private and on 127.0.0.1), two Celery workers with ``--concurrency 4``
standing for two hosts (each its own host token cache, AWS access key and hostname), running 200
``EcrDockerOperator`` tasks (``force_pull``: every task needs a registry login) against one
registry whose ECR tokens live 30 seconds.

It proves, with the emulator's own record of every ``GetAuthorizationToken`` call (start and end,
access key = host):

- zero failed tasks, and both hosts ran tasks;
- per host, no ECR call that the refresh policy did not call for (:func:`uncalled_for`): each call
  after the host's first came once the token the host last fetched was due for refresh
  (``refresh_ratio`` of its life), or after another host's call had rotated it out. The host
  cache serves every other task of the host, across its concurrent task processes;
- never two calls at once from one host (each call is slowed to 0.3 s, so calls are intervals):
  the host lock makes a single flight of the processes that find the token due together.

``AIRFLOW_ECR_LOAD_TASKS`` changes the number of tasks (e.g. 40 for a quick look). The figures are
printed and written to ``celery-load.json`` in the test's temporary directory.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr.settings import DEFAULT_REFRESH_RATIO
from helpers.celery_harness import CeleryCluster, celery_cluster, to_json

pytestmark = [pytest.mark.lab, pytest.mark.airflow_run, pytest.mark.timeout(1500)]

DAG_ID = "celery_ecr_load"
DAG_FILE = Path(__file__).resolve().parent / "celery_load_dag.py"
TASKS = int(os.environ.get("AIRFLOW_ECR_LOAD_TASKS", "200"))
HOSTS = ("host-a", "host-b")
CONCURRENCY = 4
TOKEN_TTL = 30.0
# airflow-ecr's default [ecr] refresh_ratio: a host refreshes a token after half of its life.
REFRESH_RATIO = DEFAULT_REFRESH_RATIO
REFRESH_INTERVAL = REFRESH_RATIO * TOKEN_TTL
# The emulator answers every call this late: a call is an interval, and overlaps are visible.
CALL_DELAY = 0.3
# When the emulator rotates the registry password (a call after half of the token's life mints a
# new one): at the moment a host refreshes, so that no token is replaced before any host is due.
ROTATE_FRACTION = REFRESH_RATIO
PULL_LINE = re.compile(r"Pulling docker image")


def pull_times(cluster: CeleryCluster, run_id: str) -> dict[int, float]:
    """When each task started its pull (map index -> epoch s), from the task log files' JSON lines."""
    found: dict[int, float] = {}
    for path, text in cluster.harness.task_logs(DAG_ID, run_id=run_id).items():
        index = re.search(r"map_index=(\d+)", path)
        for line in text.splitlines():
            if index and PULL_LINE.search(line):
                with_time = json.loads(line) if line.startswith("{") else {}
                stamp = with_time.get("timestamp")
                if stamp:
                    found[int(index.group(1))] = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                break
    return found


def overlaps(calls: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Pairs of calls (sorted by start) where one started before the previous one ended."""
    ordered = sorted(calls, key=lambda c: c["time"])
    return [(a, b) for a, b in itertools.pairwise(ordered) if b["time"] < a["end"]]


def uncalled_for(host_calls: list[dict[str, Any]], all_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The calls of one host (sorted by start) that the refresh policy did not call for.

    A call is called for when it is the host's first, or when at its start the token the host's
    previous call brought (minted at ``tokens_issued_at``, by the emulator's clock) was due for
    refresh, or had been rotated out: some call (of any host) that started earlier handed out a
    newer token, which the registry alone accepts. The token is taken to have arrived at the end of
    the previous call: it arrived no earlier, so it was due no earlier than found here, and a
    call the policy made is never reported.

    :param host_calls: the host's ``GetAuthorizationToken`` calls, as the emulator records them.
    :param all_calls: the calls of every host.
    """
    found = []
    for previous, call in itertools.pairwise(host_calls):
        if not previous["tokens_issued_at"]:
            continue  # a failed call brought no token
        (minted,) = previous["tokens_issued_at"]
        arrived = previous["end"]
        due = arrived + REFRESH_RATIO * (minted + TOKEN_TTL - arrived)
        rotated = any(c["time"] < call["time"] and max(c["tokens_issued_at"] or [0]) > minted for c in all_calls)
        if call["time"] < due and not rotated:
            found.append(call)
    return found


def minted_during(call: dict[str, Any]) -> bool:
    """Whether ``call`` minted the token it handed out (rather than handing out the current one)."""
    return bool(call["tokens_issued_at"]) and call["tokens_issued_at"][0] >= call["time"]


def run_load(
    lab: Any, emulator: Any, tmp_path: Path, tasks: int = TASKS, host_env: dict[str, dict[str, str]] | None = None
) -> dict[str, Any]:
    """
    Run the load DAG once on a fresh Celery deployment; the figures (also written to
    ``celery-load.json`` in ``tmp_path`` and printed).

    :param tasks: the number of mapped tasks.
    :param host_env: more environment for the workers of some hosts (for control runs).
    """
    account_id = lab.account()["account_id"]
    emulator.config(token_ttl=TOKEN_TTL, rotate_fraction=ROTATE_FRACTION)
    emulator.revoke(account_id)  # a token minted under the 12 h policy must not serve this run
    emulator.faults(delay=CALL_DELAY)

    figures: dict[str, Any] = {"tasks": tasks, "hosts": list(HOSTS), "concurrency": CONCURRENCY}
    env = {"ECR_LOAD_TASKS": str(tasks), "ECR_LOAD_MAX_ACTIVE": str(2 * CONCURRENCY * len(HOSTS))}
    # The call-count model refreshes at exactly refresh_ratio: no fleet jitter bringing it forward.
    env["AIRFLOW__ECR__REFRESH_JITTER"] = "0"
    started = time.monotonic()
    with celery_cluster(lab.raw, tmp_path, [DAG_FILE], HOSTS, CONCURRENCY, env, host_env) as cluster:
        cluster.wait_workers()
        figures["startup_seconds"] = round(time.monotonic() - started, 1)
        run_id = cluster.session.trigger(DAG_ID, run_id="load_1")
        triggered = time.monotonic()
        figures["state"] = cluster.wait_run(DAG_ID, run_id, timeout=1200)
        figures["run_seconds"] = round(time.monotonic() - triggered, 1)
        instances = cluster.task_instances(DAG_ID, run_id)
        pulls = pull_times(cluster, run_id)
        logs = cluster.harness.task_logs(DAG_ID, run_id=run_id)
        keys = {w.access_key: w.name for w in cluster.workers}
        figures["diagnostics"] = cluster.diagnostics()[-6000:]

    figures["states"] = dict(Counter(ti["state"] for ti in instances))
    figures["task_hostnames"] = sorted({str(ti["hostname"]) for ti in instances})
    calls = [c for c in emulator.calls() if c.get("access_key_id") in keys]
    figures["ecr_calls"] = len(calls)
    figures["ecr_call_outcomes"] = dict(Counter(c["outcome"] for c in calls))
    needs: dict[str, list[float]] = {}
    host_calls: dict[str, list[dict[str, Any]]] = {}
    for name in HOSTS:
        host_tasks = [ti for ti in instances if ti["hostname"] == name]
        needs[name] = sorted(pulls[ti["map_index"]] for ti in host_tasks if ti["map_index"] in pulls)
        host_calls[name] = sorted((c for c in calls if keys[c["access_key_id"]] == name), key=lambda c: c["time"])
    per_host: dict[str, Any] = {}
    for name in HOSTS:
        start = needs[name][0] if needs[name] else 0.0
        minted = [c["tokens_issued_at"][0] for c in host_calls[name] if c["tokens_issued_at"]]
        per_host[name] = {
            "tasks": sum(1 for ti in instances if ti["hostname"] == name),
            "pulls_logged": len(needs[name]),
            "ecr_calls": len(host_calls[name]),
            "tokens_minted_by_the_host": sum(1 for c in host_calls[name] if minted_during(c)),
            "uncalled_for_call_offsets": [round(c["time"] - start, 2) for c in uncalled_for(host_calls[name], calls)],
            "pull_span_seconds": round(needs[name][-1] - start, 1) if needs[name] else 0.0,
            "call_offsets_seconds": [round(c["time"] - start, 2) for c in host_calls[name]],
            "token_mint_offsets_seconds": [round(m - start, 2) for m in minted],
            "first_pull_epoch": start,
            "pull_offsets_seconds": [round(t - start, 3) for t in needs[name]],
            "calls_epoch": [[round(c["time"], 3), round(c["end"], 3)] for c in host_calls[name]],
            "overlapping_calls": len(overlaps(host_calls[name])),
        }
    figures["per_host"] = per_host
    figures["registry_rejections_retried"] = sum(text.count("rejected the ECR token") for text in logs.values())
    figures["refresh_interval_seconds"] = REFRESH_INTERVAL
    out = tmp_path / "celery-load.json"
    out.write_text(json.dumps(to_json(figures), indent=2))
    shown = {k: v for k, v in figures.items() if k != "diagnostics"}
    hidden = ("calls_epoch", "pull_offsets_seconds", "first_pull_epoch", "token_mint_offsets_seconds")
    shown["per_host"] = {h: {k: v for k, v in f.items() if k not in hidden} for h, f in per_host.items()}
    print(f"\nCelery load figures (all in {out}):\n{json.dumps(to_json(shown), indent=2)}")
    return figures


def assert_load_properties(figures: dict[str, Any]) -> None:
    """Zero failures, both hosts used, per host: only the calls the refresh policy calls for, none at once."""
    tasks = figures["tasks"]
    assert figures["state"] == "success" and figures["states"] == {"success": tasks}, (
        f"run {figures['state']}, tasks {figures['states']}\n{figures['diagnostics']}"
    )
    assert figures["task_hostnames"] == sorted(HOSTS), figures["task_hostnames"]
    assert figures["ecr_call_outcomes"] == {"ok": figures["ecr_calls"]}, figures["ecr_call_outcomes"]
    for name, host in figures["per_host"].items():
        assert host["tasks"] > 0 and host["pulls_logged"] == host["tasks"], f"{name}: {host}"
        assert host["overlapping_calls"] == 0, f"{name} made two ECR calls at once: {host}"
        assert host["uncalled_for_call_offsets"] == [], f"{name} made calls its cache should have saved: {host}"


def test_two_celery_hosts_200_tasks_one_call_per_host_per_refresh(lab: Any, emulator: Any, tmp_path: Path) -> None:
    assert_load_properties(run_load(lab, emulator, tmp_path))
