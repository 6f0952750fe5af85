"""The compatibility tables of the README and docs/compatibility.md are the matrix's, not hand-written."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_matrix() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compat_matrix", REPO / "scripts" / "compat.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["README.md", "docs/compatibility.md"])
def test_the_table_is_rendered_from_the_results(page: str) -> None:
    matrix = load_matrix()
    results = matrix.load_results()
    assert {c.id for c in matrix.CELLS} <= set(results), "run scripts/compat.py: some cells have no results"
    text = (REPO / page).read_text()
    start, end = "<!-- compat-table:start -->", "<!-- compat-table:end -->"
    shown = text.split(start, 1)[1].split(end, 1)[0].strip()
    assert shown == matrix.table(results), f"{page} is stale: python scripts/compat.py --render"


def test_every_claimed_line_has_a_passing_row() -> None:
    """Each Airflow minor line and Python the docs claim is a cell of the matrix that passed."""
    matrix = load_matrix()
    results = matrix.load_results()
    passed = [r for r in results.values() if all(s["ok"] for s in r["steps"]) and r["cell"]["kind"] != "refused"]
    lines = {".".join(r["versions"]["airflow"].split(".")[:2]) for r in passed}
    pythons = {r["cell"]["python"] for r in passed}
    assert lines >= {"2.11", "3.0", "3.1", "3.2", "3.3"}, lines
    assert pythons >= {"3.10", "3.11", "3.12", "3.13"}, pythons
    refused = [r for r in results.values() if r["cell"]["kind"] == "refused"]
    assert refused and all(all(s["ok"] for s in r["steps"]) for r in refused), refused


# -- upstream breakage: told from ours by the cell's recorded output --------------------------------
CRYPTOGRAPHY_51_SYMPTOM = (
    "AttributeError: 'cryptography.hazmat.bindings._rust.fernet.MultiFernet' object has no attribute 'is_encrypted'"
)


@pytest.mark.parametrize(
    ("kind", "airflow", "cryptography", "output", "expected"),
    [
        ("newest", "2.11.2", "51.0.1", CRYPTOGRAPHY_51_SYMPTOM, "cryptography<51"),
        ("newest", "3.1.8", "51.0.1", f"airflow connections add failed:\n{CRYPTOGRAPHY_51_SYMPTOM}", "cryptography<51"),
        # Bounded cells never get a second run: their failure is ours to explain.
        ("era", "2.11.2", "51.0.1", CRYPTOGRAPHY_51_SYMPTOM, None),
        ("lowest", "3.1.8", "51.0.1", CRYPTOGRAPHY_51_SYMPTOM, None),
        # Not the breaking combination: the symptom text alone proves nothing.
        ("newest", "3.3.2", "51.0.1", CRYPTOGRAPHY_51_SYMPTOM, None),
        ("newest", "3.1.8", "50.0.2", CRYPTOGRAPHY_51_SYMPTOM, None),
        # The breaking combination, but a failure of another kind (ours, until shown otherwise).
        ("newest", "3.1.8", "51.0.1", "AssertionError: no 'compat-secrets-backend' in the run", None),
    ],
)
def test_a_known_upstream_breakage_needs_the_versions_and_the_symptom(
    kind: str, airflow: str, cryptography: str, output: str, expected: str | None
) -> None:
    matrix = load_matrix()
    found = matrix.known_breakage(kind, {"airflow": airflow, "cryptography": cryptography}, output)
    assert (found.workaround if found else None) == expected


def test_an_upstream_breakage_is_named_in_the_table_with_its_workaround() -> None:
    matrix = load_matrix()
    cell = next(c for c in matrix.CELLS if c.id == "af3.1-newest-py3.10")
    breakage = matrix.UPSTREAM[0]
    versions = {"airflow": "3.1.8", "docker": "4.6.0", "amazon": "9.37.0", "cryptography": "50.0.2"}
    step = {"name": "deployment tests", "ok": True, "seconds": 60.0, "detail": ""}
    result = {
        "cell": asdict(cell),
        "measured": "2026-12-07",
        "versions": versions,
        "steps": [step],
        "wall": 300.0,
        "upstream": {
            "breakage": asdict(breakage),
            "versions": {**versions, "cryptography": "51.0.1"},
            "steps": [{**step, "ok": False}],
        },
    }
    text = matrix.table({cell.id: result})
    row = next(line for line in text.splitlines() if line.startswith("| 3.1.8 "))
    assert "upstream breakage: cryptography 51.0.1³; with `cryptography<51`: pass" in row, row
    assert "| 5.0 |" in row, row  # the elapsed time of both runs
    assert "³ Upstream, not airflow-ecr: cryptography 51 breaks" in text, text
    assert "has no attribute 'is_encrypted'" in text, text
