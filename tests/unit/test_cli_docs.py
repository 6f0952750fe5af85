"""``airflow-ecr docs``: the documentation's address, the list of pages, one page; no Airflow imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from airflow_ecr import cli

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def test_the_address_is_the_one_in_the_package_metadata() -> None:
    from importlib.metadata import metadata

    urls = dict(entry.split(", ", 1) for entry in metadata("airflow-ecr").get_all("Project-URL") or [])
    assert urls["Documentation"] == cli.DOCS_URL


def test_without_a_page_it_lists_every_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["docs"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"Documentation: {cli.DOCS_URL}"
    listed = {line.split()[0] for line in out.splitlines()[2:]}
    expected = {p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md")}
    assert listed == expected
    assert any(line.split() == ["quickstart", "Quickstart"] for line in out.splitlines()), "titles are missing"


@pytest.mark.parametrize("name", ["quickstart", "quickstart.md", "recipes/testing"])
def test_a_page_prints_its_markdown(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["docs", name]) == 0
    page = DOCS / f"{name.removesuffix('.md')}.md"
    # A generated section (the testing recipe's fault table) stands as the command that shows it.
    assert capsys.readouterr().out == cli._GENERATED.sub(cli._where_generated, page.read_text())


def test_generated_sections_say_where_to_look(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["docs", "reference/configuration"]) == 0
    out = capsys.readouterr().out
    assert "<!-- gen:" not in out
    assert "`python -m pydoc airflow_ecr.operators.docker.EcrDockerOperator`" in out
    assert "`airflow config list --section ecr`" in out


def test_an_unknown_page_is_one_line_and_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["docs", "no-such-page"]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "airflow-ecr docs" in captured.err


def test_docs_imports_no_airflow() -> None:
    script = "import sys\nfrom airflow_ecr.cli import main\nmain(['docs'])\nprint('airflow' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.splitlines()[-1:] == ["False"], result.stdout + result.stderr
