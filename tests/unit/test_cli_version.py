"""``airflow-ecr --version``: the one version (``airflow_ecr.__version__``), printed without importing Airflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_ecr

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "airflow-ecr"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST_"))}
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False, env=env)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([str(CONSOLE_SCRIPT)], id="console-script"),
        pytest.param([sys.executable, "-m", "airflow_ecr.cli"], id="python-m"),
    ],
)
def test_version_prints_the_package_version(argv: list[str]) -> None:
    if not Path(argv[0]).exists():
        pytest.fail(f"{argv[0]} is missing: is airflow-ecr installed in this environment?", pytrace=False)
    result = run(*argv, "--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"airflow-ecr {airflow_ecr.__version__}\n", "")


def test_version_imports_no_airflow() -> None:
    # Cheap enough for a shell prompt or a deployment check: Airflow's import takes seconds.
    script = (
        "import sys\nfrom airflow_ecr.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as stop:\n    code = stop.code\n"
        "print('exit', code, 'airflow' in sys.modules, 'docker' in sys.modules)\n"
    )
    result = run(sys.executable, "-c", script)
    assert result.stdout.splitlines()[-1:] == ["exit 0 False False"], result.stdout + result.stderr


def test_the_version_is_defined_once() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"], "pyproject.toml must not repeat the version"
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "src/airflow_ecr/__init__.py"
    from airflow_ecr.provider_info import get_provider_info

    assert get_provider_info()["versions"][0] == airflow_ecr.__version__
