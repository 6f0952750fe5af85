"""The host token cache through a real scheduler: tasks in separate processes share one token.

Airflow 3: api-server + dag-processor + scheduler with the LocalExecutor (each task is a process
forked by an executor worker's supervisor). Airflow 2.11: the scheduler with the
SequentialExecutor, because Airflow 2 refuses the LocalExecutor on SQLite; each task is still its
own ``airflow tasks run`` process. While the run goes on, a sampler
(``airflow_ecr_lab.leaks.ProcessSampler``) reads every process's command line (and environment)
every 50 ms: no ECR token may ever appear there.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr.testing import EmulatorClient
from airflow_ecr_lab.leaks import ProcessSampler, ecr_secret_forms, scan_texts
from helpers.airflow_harness import AirflowHarness

pytestmark = [pytest.mark.lab, pytest.mark.airflow_run, pytest.mark.timeout(420)]

DAG_ID = "ecr_cache_two_tasks"


def test_second_task_process_uses_host_cache(
    airflow: AirflowHarness, ecr_admin: EmulatorClient, e2e_lab: dict[str, Any]
) -> None:
    account = e2e_lab["accounts"][0]["account_id"]
    # A token that rotated between the two tasks would (rightly) cost a second call.
    assert ecr_admin.config()["token_ttl"] >= 600, f"emulator policy left short: {ecr_admin.config()}"
    cache_dir = Path(tempfile.mkdtemp(prefix="ecr-cache-sched-", dir=airflow.home))  # empty, 0700
    # Passwords are collected during the run too: the emulator may rotate them meanwhile.
    sampler = ProcessSampler(secret_source=lambda: ecr_admin.passwords([account])).start()
    try:
        with airflow.scheduler(cache_dir=cache_dir) as session:
            run_id = session.trigger(DAG_ID)
            result = session.wait_run(DAG_ID, run_id, timeout=240)
            task_rows = airflow.query(
                "SELECT task_id, state, pid FROM task_instance WHERE dag_id = ? AND run_id = ?",
                DAG_ID,
                run_id,
            )
            service_pids = set(session.pids)
            if airflow.major >= 3:  # what docs/reproducible-runs.md tells users to ask the REST API
                path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/first/xcomEntries/ecr_image"
                xcom_status, xcom_entry = session._request("GET", path)
    finally:
        sampler.stop()  # one last sample and one last password collection

    assert result.state == "success", result.describe()
    states = {row["task_id"]: row["state"] for row in task_rows}
    assert states == {"first": "success", "second": "success"}, result.describe()
    task_pids = {row["task_id"]: row["pid"] for row in task_rows}
    assert task_pids["first"] != task_pids["second"], f"tasks ran in one process: {task_pids}"
    assert not service_pids & set(task_pids.values()), (service_pids, task_pids)

    # Both tasks pulled (force_pull) and ran; the second was served by the host cache.
    for task_id in ("first", "second"):
        log = result.log_text(task_id)
        assert "Pulling docker image" in log and f"cache-{task_id}" in log, result.describe()
    calls = ecr_admin.calls(access_key=result.access_key)
    assert len(calls) == 1, f"expected ONE GetAuthorizationToken call for the run, got {calls}"
    assert calls[0]["registry_ids"] == [account] and calls[0]["outcome"] == "ok", calls
    assert len(list(cache_dir.glob("*.json"))) == 1, sorted(p.name for p in cache_dir.iterdir())
    # Each task process recorded the digest it ran; on Airflow 3 the REST API serves it.
    records = [airflow.xcom(DAG_ID, task_id, "ecr_image") for task_id in ("first", "second")]
    assert records[0]["digest"] and records[0]["digest"] == records[1]["digest"], records
    if airflow.major >= 3:
        assert xcom_status == 200, xcom_entry
        value = xcom_entry["value"]
        value = json.loads(value) if isinstance(value, str) else value
        assert value["reference"] == records[0]["reference"], xcom_entry

    # No token in any process's command line or environment, in the task logs or the services' output.
    assert sampler.samples >= 40 and not sampler.errors, (sampler.samples, sampler.errors)
    assert sampler.secrets and all(len(p) >= 16 for p in sampler.secrets)
    secrets = ecr_secret_forms(sampler.secrets)
    leaks = sampler.leaks(secrets) + scan_texts({"services' output": result.output, **result.logs}, secrets)
    assert not leaks, "an ECR token appeared in:\n" + "\n".join(map(str, leaks))
