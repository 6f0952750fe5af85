"""
The package's structural rules, checked on its source: no import cycle (in the package and in
benchmarks/, counting imports inside functions and under ``if TYPE_CHECKING:``), packages that import
only lower layers (``LAYERS``), and one home per rule (the one class that calls
GetAuthorizationToken, the one module that defines exit codes, the one module that touches docker-py
privates).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import airflow_ecr

SRC = Path(airflow_ecr.__file__).resolve().parent
PACKAGE = "airflow_ecr"
# The benchmarks are scripts run from their directory: each imports its siblings by bare name.
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# airflow_ecr's layers, lowest first: a package or module (the part after ``airflow_ecr.``) imports
# only those of lower layers (and itself). Names in one layer do not import each other.
# ``testing`` is outside the order: it may import the product, and the product never imports it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("exit_codes",),  # plain constants and the exception -> exit code mapping
    ("aws_failure",),  # what an AWS failure is (kinds, codes), as data: errors carry it
    ("_compat",),  # where Airflow's symbols live
    ("exceptions",),
    ("process_state",),  # what a process keeps: below settings and tokens, which keep theirs there
    ("registry",),  # pure parsing of ECR hosts and image references
    ("images",),  # pure image names, records, pins; the manifest API
    ("settings",),  # [ecr], read once
    ("tokens",),
    ("trust",),  # the image policy: scan findings and signatures of a digest
    ("provider_info",),  # its defaults are the refresh policy's
    ("hooks", "connections", "lineage"),
    ("kubernetes", "secrets", "credential_helper"),
    ("operators",),
    ("decorators", "dags"),
    ("doctor",),
    ("cli", "example_dags"),
)
OUTSIDE_LAYERS = ("testing",)


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def benchmark_modules() -> dict[str, Path]:
    return {path.stem: path for path in sorted(BENCHMARKS.glob("*.py"))}


def imports(name: str, path: Path, known: dict[str, Path], root: str = PACKAGE) -> set[str]:
    """
    The ``known`` modules ``name`` imports: at module level, inside functions, and under
    ``if TYPE_CHECKING:`` (no import happens there at run time, but the layers it names are the same).
    """
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
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
            if target and target != name and target != root:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles_of(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle once, as the modules along it (the first repeated at the end)."""
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        for target in sorted(graph[node]):
            if target in trail:
                cycle = [*trail[trail.index(target) :], target]
                if sorted(cycle[:-1]) not in [sorted(c[:-1]) for c in cycles]:
                    cycles.append(cycle)
            elif target not in done:
                visit(target, [*trail, target])
        done.add(node)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    return cycles


def test_no_import_cycle() -> None:
    cycles = cycles_of(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_cycle_in_benchmarks() -> None:
    known = benchmark_modules()
    graph = {name: imports(name, path, known, root="") for name, path in known.items()}
    cycles = cycles_of(graph)
    assert not cycles, "import cycles in benchmarks/:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _unit(module: str) -> str:
    """The package or top-level module of ``airflow_ecr`` that ``module`` belongs to."""
    return module.split(".")[1]


def test_every_unit_has_a_layer() -> None:
    placed = [unit for layer in LAYERS for unit in layer] + list(OUTSIDE_LAYERS)
    assert len(placed) == len(set(placed))
    assert {_unit(m) for m in modules() if m != PACKAGE} == set(placed)


def test_layers_import_only_downward() -> None:
    rank = {unit: level for level, layer in enumerate(LAYERS) for unit in layer}
    wrong = []
    for module, targets in sorted(import_graph().items()):
        if module == PACKAGE:
            continue
        unit = _unit(module)
        for target in sorted(targets):
            other = _unit(target)
            if other == unit:
                continue
            if other in OUTSIDE_LAYERS:
                if unit not in OUTSIDE_LAYERS:
                    wrong.append(f"{module} -> {target} (the product never imports {other})")
            elif unit not in OUTSIDE_LAYERS and rank[other] >= rank[unit]:
                wrong.append(f"{module} -> {target} ({unit}, layer {rank[unit]}, imports {other}, layer {rank[other]})")
    assert not wrong, "imports from a layer to one above it or beside it:\n" + "\n".join(wrong)


def test_the_product_never_imports_the_lab() -> None:
    # The lab (lab/, airflow_ecr_lab) is the test rig, not in the wheel: an import of it from the
    # product, even inside a function or for typing, would fail on every user's worker.
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                targets = [node.module or ""]
            found += [f"{name} imports {t}" for t in targets if t.split(".")[0] == "airflow_ecr_lab"]
    assert not found


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
