"""The benchmarks run (in their quick mode), so they cannot rot between full runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_quick(script: str, out: Path, *args: str) -> dict[str, Any]:
    """Run ``benchmarks/<script> --quick``; return what it wrote to ``out``."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
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
