"""
The compatibility-matrix checks of one deployment ("cell"), run by ``scripts/compat.py`` with
``AIRFLOW_ECR_CELL_VENV`` set to the cell's virtualenv. Without it there is no cell to check, and
the folder is not collected (the rest of the suite runs the locked environments instead).
"""

from __future__ import annotations

import os
from pathlib import Path


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    if os.environ.get("AIRFLOW_ECR_CELL_VENV"):
        return None
    return collection_path.name.startswith("test_") or None
