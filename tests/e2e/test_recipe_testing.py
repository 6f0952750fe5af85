"""
The testing recipe's code (``docs/recipes/test_ecr_dags.py``, shown whole in
``docs/recipes/testing.md``) runs as written: copied alone into an empty directory, as a user saves
it, and run by pytest there against the running lab, on Airflow 3 and 2.11.

``tests/unit/test_docs_snippets.py`` keeps the page's copy equal to the file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers.airflow_harness import find_venv

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "docs" / "recipes" / "test_ecr_dags.py"
# The recipe's tests: all must pass (a skip would hide a broken step).
RECIPE_TESTS = 2


@pytest.mark.lab
@pytest.mark.airflow_run
@pytest.mark.timeout(900)
@pytest.mark.parametrize("version", [pytest.param("3", id="af3"), pytest.param("2", id="af2")])
def test_the_testing_recipe_runs_as_written(version: str, lab: Any, tmp_path: Path) -> None:
    venv = find_venv(version)
    if venv is None:
        pytest.fail(f"no Airflow {version} virtualenv (scripts/venvs.sh {version})", pytrace=False)
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    shutil.copy2(RECIPE, project / "tests" / RECIPE.name)
    # Nothing from this session: the recipe sets up its own Airflow, AWS connection and Docker host.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "DOCKER_", "PYTEST_"))}
    # Its lab fixture takes the running lab (and leaves it running) through the documented variable.
    env["AIRFLOW_ECR_LAB_DIR"] = str(lab.dir)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-rA", f"tests/{RECIPE.name}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert f"{RECIPE_TESTS} passed" in output and "skipped" not in output, output[-3000:]
