"""
The documentation stays true to the code.

- Every message quoted in ``docs/troubleshooting.md`` (its ``text`` code blocks) is one the code
  produces: it must match, as a whole, a message template found in ``src/airflow_ecr`` with
  ``ast`` (string literals, f-strings, ``+`` concatenations, ``%s`` log formats), where the
  template's variable parts match anything and the docs' ``<...>`` placeholders are just text.
- The site builds with ``mkdocs build --strict`` (broken links, missing pages, and an unknown
  generated section all fail), and the generated reference is in it. The inline copies of the
  example DAGs are checked by ``test_docs_snippets.py``.
"""

from __future__ import annotations

import ast
import html
import inspect
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "airflow_ecr"
DOCS = REPO / "docs"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
WILDCARD = "\x00"
# A template must pin down a good part of a quoted message (half of it, or 40 characters when the
# docs fill the variable parts with long examples): f"{subject}: {err}" must not match anything.
MIN_LITERAL_SHARE = 0.5
MIN_LITERAL_CHARS = 40
_PERCENT = re.compile(r"%(?:\.\d+)?[sdrf]")


def normalize(text: str) -> str:
    return " ".join(text.split())


def _parts(node: ast.AST) -> list[str] | None:
    """A string-valued expression as literal parts and WILDCARDs; None if it is no string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [_PERCENT.sub(WILDCARD, node.value)]
    if isinstance(node, ast.JoinedStr):
        out: list[str] = []
        for value in node.values:
            literal = isinstance(value, ast.Constant) and isinstance(value.value, str)
            out.append(value.value if literal else WILDCARD)  # type: ignore[attr-defined]
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _parts(node.left), _parts(node.right)
        if left is None and right is None:
            return None
        return (left or [WILDCARD]) + (right or [WILDCARD])
    return None


@cache
def templates() -> list[tuple[re.Pattern[str], int, str]]:
    """Every string template in the package: (regex, number of literal characters, source)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            parts = _parts(node)
            if parts is None:
                continue
            literals = [normalize(p) for p in "".join(parts).split(WILDCARD)]
            pattern = re.compile(r"\s*.*?\s*".join(re.escape(p) for p in literals), re.DOTALL)
            found.append((pattern, sum(map(len, literals)), f"{path.relative_to(SRC)}:{node.lineno}"))
    return found


def source_of(message: str) -> str | None:
    """Where the code produces ``message`` (a quoted message from the docs), or None."""
    message = normalize(message)
    for pattern, literal_chars, where in templates():
        if literal_chars >= min(MIN_LITERAL_SHARE * len(message), MIN_LITERAL_CHARS) and pattern.fullmatch(message):
            return where
    return None


def quoted_messages() -> list[str]:
    """The ``text`` code blocks of the troubleshooting page."""
    return re.findall(r"^```text\n(.*?)^```", TROUBLESHOOTING.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_troubleshooting_quotes_only_messages_the_code_produces() -> None:
    messages = quoted_messages()
    assert len(messages) >= 30, f"only {len(messages)} quoted messages found: is the page's format unchanged?"
    invented = [m.strip() for m in messages if source_of(m) is None]
    assert not invented, "quoted in docs/troubleshooting.md but produced nowhere in src:\n\n" + "\n\n".join(invented)


@pytest.mark.parametrize(
    "message",
    [
        # Real messages with a word changed, dropped or added: each must be caught.
        "No AWS credentials found for <x> (registry <y>): put keys in the AWS connection.",
        "Image <image> was not found in <host>: check the repository name. Registry said: <m>",
        "Cannot reach the Docker daemon at <url>: check that it runs, or set docker_url.",
        "[ecr] refresh_ratio must be in (0, 2], got 1.5: set e.g. 0.5.",
        "Some error: that the code never raises.",
    ],
)
def test_the_check_rejects_messages_the_code_does_not_produce(message: str) -> None:
    assert source_of(message) is None, f"{message!r} matched {source_of(message)}"


def test_the_check_accepts_a_real_message_with_placeholders() -> None:
    # tokens.py: f"No AWS region for {source}: set region_name."
    assert source_of("No AWS region for <source>: set region_name.") is not None


def test_site_builds_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        import airflow

        if airflow.__version__.startswith("2."):
            pytest.skip("the docs are built in the Airflow 3 environment (mkdocs is locked there)")
        pytest.fail(f"mkdocs is not installed next to {sys.executable}", pytrace=False)
    site = tmp_path / "site"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            "PATH": f"{mkdocs.parent}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "AIRFLOW_HOME": str(tmp_path / "airflow"),  # the hook imports Airflow
            "NO_MKDOCS_2_WARNING": "1",
        },
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"

    pages = {path.relative_to(site).as_posix(): path.read_text() for path in site.rglob("*.html")}
    assert not [name for name, html in pages.items() if "<!-- gen:" in html], "a generated section was left empty"
    reference = pages["reference/configuration/index.html"]
    for generated in ("AIRFLOW__ECR__CACHE_DIR", "AIRFLOW__ECR__REFRESH_RATIO", "conn_id_prefix", "registry_ids"):
        assert generated in reference, f"{generated} is missing from the generated configuration reference"
    # The testing recipe's fault table: one row per fault switch the emulator takes.
    from airflow_ecr.testing.emulator.state import EmulatorState

    recipe = pages["recipes/testing/index.html"]
    switches = [name for name in inspect.signature(EmulatorState.set_faults).parameters if name != "self"]
    missing = [name for name in switches if f"<td><code>{name}</code></td>" not in recipe]
    assert not missing, f"the testing recipe's generated fault table lacks {missing}"
    cli = pages["reference/cli/index.html"]
    assert "refresh-connection" in cli and "doctor" in cli and "--conn-id" in cli, "the CLI reference is incomplete"
    # Highlighted code is split into spans: compare the text.
    examples = html.unescape(re.sub(r"<[^>]+>", "", pages["examples/index.html"]))
    for dag_file in sorted((SRC / "example_dags").glob("example_*.py")):
        assert f'dag_id="{dag_file.stem}"' in examples, (
            f"the source of {dag_file.name} is missing from the examples page"
        )


def named_tests(page: Path) -> list[tuple[str, str]]:
    """``(file, test)`` for every ``tests/....py::name`` (and each ``::name`` after it) a page cites."""
    cited: list[tuple[str, str]] = []
    current = ""
    for match in re.finditer(r"`(tests/[\w/.]+\.py)(?:::(\w+))?`|`::(\w+)`", page.read_text()):
        current = match[1] or current
        name = match[2] or match[3]
        if name:
            cited.append((current, name))
    return cited


def test_the_security_page_names_only_tests_that_exist() -> None:
    """Each boundary in docs/security.md names the test that proves it: a renamed test must not leave it unproven."""
    cited = named_tests(DOCS / "security.md")
    assert len(cited) > 30
    missing = [f"{path}::{name}" for path, name in cited if f"def {name}(" not in (REPO / path).read_text()]
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"
