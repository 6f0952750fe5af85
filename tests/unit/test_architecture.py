"""
The package's structural rules, checked on its source: no import cycle, and one home per rule
(the one class that calls GetAuthorizationToken, the one module that defines exit codes, the one
module that touches docker-py privates).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import airflow_ecr

SRC = Path(airflow_ecr.__file__).resolve().parent
PACKAGE = "airflow_ecr"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _outside_type_checking(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node, except those under ``if TYPE_CHECKING:`` (no import happens there)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The airflow_ecr modules ``name`` imports, at module level or inside functions."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _outside_type_checking(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            # `from airflow_ecr import x` names the module airflow_ecr.x when there is one.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != PACKAGE:
                found.add(target)
    return found


def test_no_import_cycle() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        for target in sorted(graph[node]):
            if target in trail:
                cycle = [*trail[trail.index(target) :], target]
                if sorted(cycle[:-1]) not in [sorted(c[:-1]) for c in cycles]:
                    cycles.append(cycle)
            elif target not in done:
                visit(target, [*trail, target])
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _files_matching(pattern: str, skip: tuple[str, ...] = ("testing",)) -> list[str]:
    regex = re.compile(pattern, re.MULTILINE)
    hits = []
    for name, path in modules().items():
        if name.split(".")[1:2] and name.split(".")[1] in skip:
            continue
        if regex.search(path.read_text()):
            hits.append(name)
    return hits


def test_one_class_calls_get_authorization_token() -> None:
    assert _files_matching(r"\.get_authorization_token\(") == ["airflow_ecr.tokens.sources"]


def test_exit_codes_are_numbered_in_one_module() -> None:
    assert _files_matching(r"^EXIT_\w+ = \d", skip=()) == ["airflow_ecr.exit_codes"]


def test_docker_py_privates_live_in_one_module() -> None:
    private = r"\._(auth_configs|post_json|url|result|get|post|delete|stream_helper|raise_for_status)\b"
    assert _files_matching(private, skip=()) in ([], ["airflow_ecr.hooks._docker_compat"])


def test_each_entry_module_imports_first_in_a_fresh_process() -> None:
    """
    Airflow loads provider metadata while it starts, so a cycle can appear only when one of our
    modules is the first thing a process imports (an operator's DAG file, the secrets backend, the CLI).
    """
    import subprocess
    import sys

    entry_modules = ("exceptions", "settings", "provider_info", "tokens.cache", "secrets.ecr", "cli")
    running = {
        name: subprocess.Popen(
            [sys.executable, "-c", f"import airflow_ecr.{name}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for name in entry_modules
    }
    failed = {}
    for name, proc in running.items():
        _, err = proc.communicate(timeout=120)
        if proc.returncode:
            failed[name] = err.decode(errors="replace").strip().splitlines()[-1]
    assert not failed, failed
