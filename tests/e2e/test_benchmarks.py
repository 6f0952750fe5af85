"""The benchmarks run (in their quick mode), so they cannot rot between full runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_quick(script: str, out: Path, *args: str) -> dict[str, Any]:
    """Run ``benchmarks/<script> --quick``; return what it wrote to ``out``."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return dict(json.loads(out.read_text()))


def test_credential_lookup_benchmark_quick_mode(tmp_path):
    results = run_quick("credential_lookup.py", tmp_path / "credential_lookup.json")
    assert results["ecr_calls_during_warm_runs"] == 0
    assert results["ecr_calls_during_cold_runs"] == results["cold_api_call"]["n"]
    assert results["warm_memory"]["median_ms"] < results["cold_api_call"]["median_ms"]


def test_secrets_lookup_benchmark_quick_mode(tmp_path):
    results = run_quick("secrets_lookup.py", tmp_path / "secrets_lookup.json", "--processes", "4")
    assert results["4_processes_together"] == {"exit_codes_ok": True, "ecr_calls": 1}
    assert results["calls_so_far"] == 1  # the cold lookup only: warm lookups make no call


@pytest.mark.lab
def test_peer_benchmark_quick_mode(lab, tmp_path):
    """``bench.py --quick`` measures every approach against the lab and writes JSON, Markdown and PNG."""
    results = run_quick("bench.py", tmp_path / "latest.json", "--lab", str(lab.dir))
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG")
    markdown = (tmp_path / "latest.md").read_text()
    figures = results["figures"]
    for name in ("floor", "ours", "helper", "naive", "cli"):
        assert results["approaches"][name] in markdown
        assert figures["end_to_end_ms"]["pull"][name]["n"] >= 1
    for peer in ("helper", "naive", "cli"):
        assert figures["ratios"]["credential_overhead_warm"][peer]["n"] >= 1
        assert figures["ratios"]["end_to_end_pull_vs_floor"][peer]["n"] >= 1
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
    assert len(met) == 6
    assert met["image already local: 0 ECR calls and 0 registry auth round trips"]
