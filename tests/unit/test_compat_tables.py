"""The compatibility tables of the README and docs/compatibility.md are the matrix's, not hand-written."""

from __future__ import annotations

import importlib.util
import sys
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
