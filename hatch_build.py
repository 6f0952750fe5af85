"""
Hatch build hook: the docs' Markdown pages go into the wheel as ``airflow_ecr/docs/``, so that
``airflow-ecr docs`` can show them after a plain ``pip install``.

Only the pages: a ``force-include`` of ``docs/`` would also ship the MkDocs hook (``docs/hooks.py``)
and the images, and hatch's ``exclude`` patterns do not apply to force-included paths. Editable
installs get nothing: ``airflow-ecr docs`` reads the checkout's ``docs/`` there, never a stale copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# Where the pages land inside the wheel (cli.py reads them from there).
WHEEL_DOCS = "airflow_ecr/docs"


class DocsPagesHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        docs = Path(self.root) / "docs"
        for page in sorted(docs.rglob("*.md")):
            build_data["force_include"][str(page)] = f"{WHEEL_DOCS}/{page.relative_to(docs).as_posix()}"
