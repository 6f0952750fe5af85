"""The benchmarks run (in their quick mode), so they cannot rot between full runs."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def run_quick(script: str, out: Path, *args: str, prefix: list[str] | None = None) -> dict[str, Any]:
    """Run ``benchmarks/<script> --quick`` (after ``prefix``, if given); return what it wrote to ``out``."""
    done = subprocess.run(
        [*(prefix or []), sys.executable, str(BENCHMARKS / script), "--quick", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {**json.loads(out.read_text()), "stdout": done.stdout}


def bench_access_key(approach: str) -> str:
    """The access key the benchmark signs ``approach``'s calls with (``benchmarks/lab_env.py``)."""
    spec = importlib.util.spec_from_file_location("bench_lab_env", BENCHMARKS / "lab_env.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.access_key(approach))


@contextlib.contextmanager
def wrong_ecr_endpoint() -> Iterator[dict[str, Any]]:
    """A server on a random loopback address's port 443 that accepts connections and closes them at once:
    what the credential helper meets when a host's /etc/hosts maps the ECR API to a private endpoint."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for _ in range(20):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        try:
            server.bind((address, 443))
            break
        except OSError:
            continue
    server.listen(64)
    seen = {"address": address, "connections": 0}

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                seen["connections"] += 1
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.close()  # accept() fails: the thread ends
        thread.join(5)


def test_credential_lookup_benchmark_quick_mode(tmp_path):
    results = run_quick("credential_lookup.py", tmp_path / "credential_lookup.json")
    assert results["ecr_calls_during_warm_runs"] == 0
    assert results["ecr_calls_during_cold_runs"] == results["cold_api_call"]["n"]
    assert results["warm_memory"]["median"] < results["cold_api_call"]["median"]
    assert results["warm_memory"]["unit"] == "ms"


def test_secrets_lookup_benchmark_quick_mode(tmp_path):
    results = run_quick("secrets_lookup.py", tmp_path / "secrets_lookup.json", "--processes", "4")
    assert results["4_processes_together"] == {"exit_codes_ok": True, "ecr_calls": 1}
    assert results["calls_so_far"] == 1  # the cold lookup only: warm lookups make no call


@pytest.mark.lab
def test_peer_benchmark_quick_mode(lab, tmp_path):
    """
    ``bench.py --quick`` measures every approach against the lab and writes JSON, Markdown and PNG,
    on a host whose /etc/hosts already maps the ECR API names to another server (a private endpoint
    override): the run's own mapping wins for the names it serves, and that server sees no connection.
    The override lives in a private mount namespace made for this test: nothing global changes.
    """
    names = sorted({f"api.ecr.{a['region']}.amazonaws.com" for a in lab.accounts})
    hosts_before = Path("/etc/hosts").read_text()
    with wrong_ecr_endpoint() as endpoint:
        hosts = tmp_path / "hosts"
        hosts.write_text(hosts_before + f"\n{endpoint['address']} {' '.join(names)}  # a private ECR endpoint\n")
        in_namespace = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c"]
        in_namespace += ['mount --bind "$1" /etc/hosts && shift && exec "$@"', "sh", str(hosts)]
        results = run_quick("bench.py", tmp_path / "latest.json", "--lab", str(lab.dir), prefix=in_namespace)
    assert endpoint["connections"] == 0, "the credential helper talked to the host's own ECR endpoint"
    assert "private /etc/hosts: took out" in results["stdout"]
    assert Path("/etc/hosts").read_text() == hosts_before
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG")
    markdown = (tmp_path / "latest.md").read_text()
    figures = results["figures"]
    for name in ("floor", "ours", "helper", "naive", "cli"):
        assert results["approaches"][name] in markdown
        assert figures["end_to_end_ms"]["pull"][name]["n"] >= 1
    for peer in ("helper", "naive", "cli"):
        assert figures["ratios"]["credential_overhead_warm"][peer]["n"] >= 1
        assert figures["ratios"]["end_to_end_pull_vs_floor"][peer]["n"] >= 1
    # Per new task process: every approach with a cache, warm and cold; a warm step makes no ECR call.
    per_process = figures["credential_overhead_per_process_ms"]
    rounds = figures["per_process"]["rounds"]
    for name in ("ours", "ours_secrets", "helper", "naive"):
        assert per_process["warm"][name]["n"] == per_process["cold"][name]["n"] == rounds
    for peer in ("helper", "naive"):
        assert figures["ratios"]["credential_overhead_per_process_warm"][peer]["n"] == rounds
    per_process_calls = figures["per_process"]["ecr_calls"]
    assert [per_process_calls["warm"][n] for n in ("ours", "ours_secrets", "helper")] == [0, 0, 0]
    assert [per_process_calls["cold"][n] for n in ("ours", "ours_secrets", "helper")] == [rounds] * 3
    assert figures["per_process"]["airflow_ecr"].endswith("airflow_ecr/__init__.py")
    # The floor of any warm step (floor.py): each part timed alone in a new task process, every round.
    floor = figures["per_process"]["floor"]
    assert [floor["steps_ms"][s]["n"] for s in ("timer", "config", "token_file", "masker")] == [rounds] * 4
    assert floor["floor_ms"] > floor["steps_ms"]["timer"]["median"] > 0
    assert "the least a warm step costs here" in markdown
    # What holds in any run, timings aside. A warm host cache: one call for all the sequential tasks
    # (the cold first), none in a task, and none and no registry auth round trip when the image is local.
    calls = figures["ecr_calls"]
    warm = calls["during_warm_credential_steps"]
    assert (warm["ours"], warm["ours_secrets"], warm["helper"], warm["naive"]) == (0, 0, 0, warm["steps"])
    assert calls["sequential_tasks"]["ours"] == 1
    assert calls["sequential_tasks"]["naive"] == calls["sequential_tasks"]["tasks"]
    assert figures["ecr_calls_per_task"]["pull"]["ours"] == 0
    assert figures["ecr_calls_per_task"]["image_local"]["ours"] == 0
    assert figures["registry_requests_per_task"]["image_local"]["ours"] == {"auth": 0, "total": 0}
    # The daemon login of the peers shows as registry round trips: the measurement sees them.
    assert figures["registry_requests_per_task"]["image_local"]["naive"]["auth"] >= 1
    # 32 task processes at once on a cold host: one call per registry; the naive glue makes one each.
    together = calls["concurrent_processes"]
    assert together["ours"]["processes"] == 32 and together["ours"]["failed"] == 0
    assert together["ours"]["ecr_calls_per_registry"] == {a["account_id"]: 1 for a in lab.accounts}
    assert together["naive"]["ecr_calls"] == together["naive"]["processes"]
    met = {t["target"]: t["met"] for t in results["targets"]}
    assert len(met) == 9  # 6 of the peers, 3 of the digest record (image_record)
    assert met["image already local: 0 ECR calls and 0 registry auth round trips"]


@pytest.mark.lab
def test_peer_benchmark_failing_peer_says_why_in_one_line(lab, emulator, tmp_path):
    """A peer that cannot get credentials (here: ECR refuses the helper's key) ends the run with one line."""
    emulator.faults(invalid_keys=[bench_access_key("helper")])
    out = tmp_path / "latest.json"
    command = [sys.executable, str(BENCHMARKS / "bench.py"), "--only", "per-process", "--quick"]
    done = subprocess.run(
        [*command, "--lab", str(lab.dir), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert line.startswith("bench: FAILED helper, preflight: docker-credential-ecr-login get: "), line
    assert "UnrecognizedClientException" in line, line
    assert "Traceback" not in done.stdout + done.stderr and "AssertionError" not in done.stdout + done.stderr
    assert not out.exists()
    assert (tmp_path / "latest.failure.log").exists()  # the task logs, named in the line


@pytest.mark.lab
def test_fleet_benchmark_quick_mode(lab, tmp_path):
    """``bench.py --only fleet --quick``: a small cold fleet against the emulator's rate limit, every
    scenario and approach measured, no airflow-ecr task failed, one ECR call per host at most per attempt."""
    results = run_quick("bench.py", tmp_path / "fleet.json", "--lab", str(lab.dir), "--only", "fleet")
    fleet = results["figures"]["fleet"]
    tasks = fleet["hosts"] * fleet["processes_per_host"]
    assert fleet["bucket"] == {"bucket_capacity": 200, "bucket_refill": 20.0}
    for scenario in ("full", "drained"):
        got = fleet["scenarios"][scenario]
        assert set(got) == {"ours", "ours_3_attempts", "ours_helper", "helper"}
        for ours in ("ours", "ours_helper"):  # the operators' task processes; docker-credential-airflow-ecr
            assert got[ours]["tasks"] == tasks and got[ours]["failed"] == 0, got
            # The host lock: one successful call per host, whatever the retries.
            assert got[ours]["ecr_calls"] - got[ours]["throttled"] == fleet["hosts"], got
        assert got["helper"]["ecr_calls"] >= fleet["hosts"], got
    # One target per scenario for each of ours and ours_helper: no task or pull failed.
    assert all(t["met"] for t in results["targets"]) and len(results["targets"]) == 2 * len(fleet["scenarios"])
    assert "| bucket drained by another deployment |" in (tmp_path / "fleet.md").read_text()
