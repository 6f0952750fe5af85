"""
Pages read on GitHub (``README.md`` and ``docs/``, the package's Documentation link) show code
inline: a ``--8<--`` include is expanded only by MkDocs, and GitHub shows the bare marker.

Each fenced block ````python title="NAME"```` is a copy of the file NAME: one next to the page
(``docs/recipes/test_ecr_dags.py``) or an example DAG (``src/airflow_ecr/example_dags/NAME``).
The copies must equal their files; ``python tests/unit/test_docs_snippets.py --write`` rewrites
every copy from its file.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
EXAMPLES = REPO / "src" / "airflow_ecr" / "example_dags"
BLOCK = re.compile(r'^```python title="(?P<name>[^"]+)"\n(?P<code>.*?)^```$', re.MULTILINE | re.DOTALL)


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def source_of(page: Path, name: str) -> Path | None:
    """The file a block titled ``name`` on ``page`` copies: beside the page first, then the example DAGs."""
    return next((path for path in (page.parent / name, EXAMPLES / name) if path.is_file()), None)


def copies() -> list[tuple[Path, str, str]]:
    """(page, block title, block code) of every titled Python block."""
    return [(page, m["name"], m["code"]) for page in pages() for m in BLOCK.finditer(page.read_text())]


def test_no_page_relies_on_a_snippet_include() -> None:
    includes = [
        f"{page.relative_to(REPO)}:{number}"
        for page in pages()
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if line.lstrip().startswith("--8<--")
    ]
    assert not includes, f"GitHub shows these '--8<--' markers as text; inline the code instead: {includes}"


@pytest.mark.parametrize(
    ("page", "name", "code"), [pytest.param(*c, id=f"{c[0].relative_to(REPO)}:{c[1]}") for c in copies()]
)
def test_every_copy_equals_its_file(page: Path, name: str, code: str) -> None:
    source = source_of(page, name)
    assert source is not None, f"{page.relative_to(REPO)} shows {name!r}, which is no file beside it nor an example DAG"
    assert code == source.read_text(), (
        f"{page.relative_to(REPO)}'s copy of {source.relative_to(REPO)} differs from the file: "
        "run python tests/unit/test_docs_snippets.py --write"
    )


def test_every_example_dag_is_on_the_examples_page() -> None:
    shown = {name for page, name, _ in copies() if page == DOCS / "examples.md"}
    missing = sorted(p.name for p in EXAMPLES.glob("example_*.py") if p.name not in shown)
    assert not missing, f"docs/examples.md does not show {missing}"


def test_the_quickstart_and_the_testing_recipe_show_their_code() -> None:
    shown = {(page.relative_to(DOCS).as_posix(), name) for page, name, _ in copies() if page.is_relative_to(DOCS)}
    assert ("quickstart.md", "example_ecr_docker.py") in shown
    assert ("recipes/testing.md", "test_ecr_dags.py") in shown


@pytest.mark.parametrize("page", [REPO / "README.md", DOCS / "quickstart.md"], ids=lambda p: p.name)
def test_apt_get_lines_work_on_a_fresh_debian(page: Path) -> None:
    # A fresh machine has no package lists, and an install without -y stops at a prompt.
    lines = [line for line in page.read_text().splitlines() if line.startswith("apt-get") and " install" in line]
    for line in lines:
        words = shlex.split(line, comments=True)
        assert words[:2] == ["apt-get", "update"] and "&&" in words, f"{page.name}: no apt-get update first: {line}"
        install = words[words.index("install") + 1 :]
        assert "-y" in install, f"{page.name}: apt-get install without -y: {line}"
    if page.name == "quickstart.md":
        assert lines and "python3-venv" in lines[0], "the quickstart's venv needs python3-venv"


def write() -> int:
    """Rewrite every copy from its file; returns the number of pages changed."""
    changed = 0
    for page in pages():
        text = page.read_text()

        def fresh(match: re.Match[str], page: Path = page) -> str:
            source = source_of(page, match["name"])
            code = source.read_text() if source else match["code"]
            return f'```python title="{match["name"]}"\n{code}```'

        new = BLOCK.sub(fresh, text)
        if new != text:
            page.write_text(new)
            changed += 1
            print(f"rewrote {page.relative_to(REPO)}")
    return changed


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {Path(__file__).relative_to(REPO)} --write")
    write()
