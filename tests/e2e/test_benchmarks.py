"""The benchmarks run (in their quick mode), so they cannot rot between full runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_credential_lookup_benchmark_quick_mode(tmp_path):
    out = tmp_path / "credential_lookup.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "credential_lookup.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["ecr_calls_during_warm_runs"] == 0
    assert results["ecr_calls_during_cold_runs"] == results["cold_api_call"]["n"]
    assert results["warm_memory"]["median_ms"] < results["cold_api_call"]["median_ms"]


def test_secrets_lookup_benchmark_quick_mode(tmp_path):
    out = tmp_path / "secrets_lookup.json"
    script = str(ROOT / "benchmarks" / "secrets_lookup.py")
    done = subprocess.run(
        [sys.executable, script, "--quick", "--processes", "4", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["4_processes_together"] == {"exit_codes_ok": True, "ecr_calls": 1}
    assert results["calls_so_far"] == 1  # the cold lookup only: warm lookups make no call
