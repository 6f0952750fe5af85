"""
The compatibility matrix: airflow-ecr installed the way users install it, into the deployments
users have, on every Airflow line and Python it claims.

For each cell it makes a fresh virtualenv with the cell's Python (CPython under pyenv, nothing
downloaded), installs the deployment (``apache-airflow==X`` with the docker, amazon and cncf.kubernetes providers,
resolved without our lock: bounded by ``--exclude-newer`` at the Airflow release's time for an "era"
cell, unbounded for a "newest" one), then installs airflow-ecr's wheel into it as ``pip install
'airflow-ecr[kubernetes]'`` would (not editable, not our lock, upgrading only what it must). A "lowest" cell
resolves our declared dependencies to their minimums instead (``--resolution lowest-direct``). Then:

1. installing airflow-ecr did not change the Airflow version;
2. ``tests/compat`` (run from the test environment, driving the cell's ``airflow``): the provider,
   hook and secrets backend are listed, every example DAG loads, one real DAG run against the lab;
3. the unit tests pass with the cell's Python against the installed wheel;
4. on the cells marked ``ui``: the connection form in a real browser (``tests/ui``).

Every deployment is configured as deployments are: a Fernet key of its own (Airflow without one
falls back to ``NullFernet`` and never runs the encryption production runs) and the AWS connection
in the metadata database, written by Airflow's own ``airflow connections add``.

A "newest" cell resolves as the newest packages do today, so an upstream release can break it
without any change of ours. When such a cell fails and its recorded output shows the symptom of a
known upstream breakage (``UPSTREAM``: package, versions, Airflow releases, symptom, workaround),
the cell's first run stops there, the cell is recorded as "upstream breakage" and run again with
the workaround pinned; only that second run decides whether the matrix fails. The era and lowest
cells stay bounded by date.

Results go to ``docs/compatibility.json``; ``--render`` writes the tables of ``docs/compatibility.md``
and the README from it. Usage: ``python scripts/compat.py [--cells ID,ID] [--render] [--save-to FILE]``,
then ``--adopt FILE`` after a ``--save-to`` run; the lab must be up (``AIRFLOW_ECR_LAB_DIR``), as
``scripts/test.sh`` does (it gives the matrix a lab of its own, beside the test suite's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "compatibility.json"
DOC = ROOT / "docs" / "compatibility.md"
README = ROOT / "README.md"
CELLS_ROOT = ROOT / ".venvs" / "compat"
TEST_TOOLS = ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.5", "hypothesis>=6.100", "requests>=2.31"]
# The unit tests are independent of each other and CPU-bound: one worker per core (2 here) makes
# each cell's unit step about 1.6x faster, which keeps the whole test command within its budget.
UNIT_WORKERS = ["-n", str(min(4, os.cpu_count() or 1))]
# About the checkout, not the deployment: the docs build (mkdocs is locked in the test environment)
# and the compatibility tables (which this very run is rewriting).
UNIT_DESELECT = [
    "--deselect",
    "tests/unit/test_docs.py::test_site_builds_strict",
    "--ignore",
    "tests/unit/test_compat_tables.py",
    # The IAM page's policies against moto_server (the test environment's), not the deployment.
    "--ignore",
    "tests/unit/test_permissions.py",
]
# The providers a deployment has beside Airflow: the docker and amazon providers airflow-ecr needs,
# and cncf.kubernetes for its `kubernetes` extra (EcrKubernetesPodOperator, the pod mutation hook).
PROVIDERS = ("docker", "amazon", "cncf-kubernetes")
PACKAGES = {
    "airflow": "apache-airflow",
    "docker": "apache-airflow-providers-docker",
    "amazon": "apache-airflow-providers-amazon",
    "cncf-kubernetes": "apache-airflow-providers-cncf-kubernetes",
    "common-compat": "apache-airflow-providers-common-compat",
    "docker-py": "docker",
    "boto3": "boto3",
    "pydantic": "pydantic",
    "cryptography": "cryptography",
}


@dataclass(frozen=True)
class Cell:
    """
    One deployment of the matrix.

    :param id: short name (also the virtualenv's folder).
    :param airflow: the Airflow release the deployment has.
    :param python: the CPython minor version (``3.12``).
    :param kind: ``era`` (packages as of ``exclude_newer``), ``newest``, ``lowest`` (our minimums) or
        ``refused`` (an Airflow older than supported, where installing must fail clearly).
    :param exclude_newer: the date bound of the deployment's resolution, if any.
    :param why_bound: why a non-era cell needs a date bound (written in the docs).
    :param ui: also drive the connection form in a real browser.
    """

    id: str
    airflow: str
    python: str
    kind: str
    exclude_newer: str | None = None
    why_bound: str = ""
    ui: bool = False


# The Airflow release dates come from PyPI; an era bound is a few weeks after the release, when a
# deployment built then had that release's providers (the first round of fixes included).
PYDANTIC = "the task runner fails with later pydantic releases (a validation or a discriminator error)"
CELLS = [
    Cell("af2.11.0-era-py3.10", "2.11.0", "3.10", "era", "2025-06-15"),
    Cell("af2.11-newest-py3.12", "2.11.2", "3.12", "newest", ui=True),
    Cell("af3.0.6-era-py3.11", "3.0.6", "3.11", "era", "2025-09-10"),
    Cell("af3.1.0-era-py3.12", "3.1.0", "3.12", "era", "2025-10-10"),
    Cell("af3.1-newest-py3.10", "3.1.8", "3.10", "newest"),
    Cell("af3.2-newest-py3.12", "3.2.2", "3.12", "newest", "2026-06-30", why_bound=PYDANTIC),
    Cell("af3.3-newest-py3.13", "3.3.2", "3.13", "newest", ui=True),
    # Hermetic, as every cell but the newest: what our minimums resolve to as of that Airflow's time
    # (unbounded, their transitive dependencies would be today's, e.g. a cryptography 2.11 never had).
    Cell("af2.11-lowest-py3.11", "2.11.0", "3.11", "lowest", "2025-06-15"),
    Cell("af3.0-lowest-py3.12", "3.0.6", "3.12", "lowest", "2025-09-10", why_bound=PYDANTIC),
    # Older than supported: pip must refuse, and an install forced past that must say so in one sentence.
    Cell("af2.10-refused-py3.11", "2.10.5", "3.11", "refused", "2025-03-01"),
]


@dataclass(frozen=True)
class UpstreamBreakage:
    """
    A known breakage of a deployment by an upstream release, not by airflow-ecr.

    :param package: the distribution whose release breaks the deployment (``cryptography``).
    :param versions: its breaking versions, a PEP 440 specifier (``>=51``).
    :param airflow: the Airflow releases affected, PEP 440 specifiers (``==3.1.*``).
    :param symptom: text the cell's recorded output shows when it is this breakage (Airflow's own
        error, whichever step meets it first).
    :param workaround: the requirement that avoids it, pinned into the deployment on the re-run.
    :param what: one sentence for the docs: what breaks, upstream.
    """

    package: str
    versions: str
    airflow: tuple[str, ...]
    symptom: str
    workaround: str
    what: str

    def applies(self, versions: dict[str, str]) -> bool:
        """Whether a deployment with these installed ``versions`` has the breaking combination."""
        package, airflow = versions.get(self.package), versions.get("airflow")
        if package is None or airflow is None:
            return False
        in_airflow = any(Version(airflow) in SpecifierSet(spec) for spec in self.airflow)
        return in_airflow and Version(package) in SpecifierSet(self.versions)


UPSTREAM = [
    UpstreamBreakage(
        "cryptography",
        ">=51",
        ("==2.11.*", "==3.1.*"),
        "has no attribute 'is_encrypted'",
        "cryptography<51",
        "cryptography 51 breaks the Fernet encryption of Airflow 2.11 and 3.1 (`get_fernet()`: "
        "'MultiFernet' object has no attribute 'is_encrypted'), so any connection written with a "
        "Fernet key fails, Airflow's own `airflow connections add` included; Airflow's constraints "
        "files pin an earlier cryptography",
    ),
]


def known_breakage(kind: str, versions: dict[str, str], output: str) -> UpstreamBreakage | None:
    """The known upstream breakage a failed cell of ``kind`` shows in its ``output``, if any: only
    "newest" cells (the others are bounded), only with the breaking versions installed."""
    if kind != "newest":
        return None
    return next((b for b in UPSTREAM if b.applies(versions) and b.symptom in output), None)


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class CellResult:
    """
    One cell's outcome.

    :param wall: the cell's elapsed seconds, both runs included.
    :param upstream: when the cell first failed for a known upstream breakage: the breakage
        (``UpstreamBreakage`` as a dict), and that first run's ``versions`` and ``steps``; the
        result's own versions and steps are then those of the run with the workaround.
    """

    cell: Cell
    measured: str
    versions: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    wall: float = 0.0
    upstream: dict[str, object] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def seconds(self) -> float:
        return self.wall


class StepFailed(Exception):
    pass


class Runner:
    """Runs one cell's steps, each logged to the cell's log file and timed."""

    def __init__(self, cell: Cell, log: Path) -> None:
        self.cell = cell
        self.log = log
        self.result = CellResult(cell, dt.date.today().isoformat())

    def run(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, timeout: float = 1200, fatal: bool = True
    ) -> str:
        """Run one step; a failed step is recorded, and ends the cell if ``fatal`` (what follows needs it)."""
        step, output = _execute(name, argv, env, timeout)
        self._record(step, argv, output)
        if fatal and not step.ok:
            raise StepFailed(name)
        return output

    def _record(self, step: Step, argv: list[str], output: str) -> None:
        with self.log.open("a") as log:
            log.write(f"\n$ {' '.join(argv)}\n{output}")
        self.result.steps.append(step)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.result.steps.append(Step(name, ok, 0.0, detail))
        if not ok:
            raise StepFailed(name)


def _execute(name: str, argv: list[str], env: dict[str, str] | None, timeout: float) -> tuple[Step, str]:
    """Run one step's command to completion: the step (timed, with its summary) and its output."""
    started = time.monotonic()
    done = subprocess.run(
        argv,
        env=env or os.environ.copy(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    if done.returncode != 0:
        return Step(name, False, seconds, "\n".join(output.strip().splitlines()[-15:])), output
    return Step(name, True, seconds, _pytest_summary(done.stdout)), output


def _pytest_summary(output: str) -> str:
    lines = [line.strip("= ") for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return lines[-1] if lines else ""


def interpreter(minor: str) -> str:
    """The pyenv CPython of ``minor`` (e.g. ``3.12``); its full path, since pyenv shims refuse
    non-global versions."""
    root = Path(subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip())
    versions = sorted(
        (p for p in (root / "versions").glob(f"{minor}.*") if re.fullmatch(rf"{re.escape(minor)}\.\d+", p.name)),
        key=lambda p: int(p.name.rsplit(".", 1)[1]),
    )
    if not versions:
        raise SystemExit(f"compat: no CPython {minor} under {root}/versions (pyenv install {minor})")
    return str(versions[-1] / "bin" / f"python{minor}")


def declared_dependencies(wheel: Path, extra: str | None = None) -> list[str]:
    """
    The wheel's runtime requirements as published (``Requires-Dist`` without an ``extra`` marker),
    and those of each of the comma-separated ``extra`` (their markers removed).
    """
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(name).decode().splitlines()
    requirements = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]
    chosen = [r for r in requirements if "extra ==" not in r]
    extras = [e for e in (extra or "").split(",") if e]
    marker = [f"extra == {quote}{e}{quote}" for e in extras for quote in "'\""]
    return chosen + [r.split(";", 1)[0].strip() for r in requirements if any(m in r for m in marker)]


# Installed as users of the Kubernetes support and signature rules install it:
# `pip install 'airflow-ecr[kubernetes,signatures]'`.
EXTRA = "kubernetes,signatures"


def build_wheel(out: Path) -> Path:
    """Build airflow-ecr's wheel once (``uv build``), from the committed and working-tree sources."""
    subprocess.run(["uv", "build", "--quiet", "--wheel", "--out-dir", str(out), str(ROOT)], check=True)
    return next(out.glob("airflow_ecr-*.whl"))


def installed_versions(venv: Path) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m\n"
        f"names = {json.dumps(PACKAGES)}\n"
        "out = {}\n"
        "for key, dist in names.items():\n"
        "    try: out[key] = m.version(dist)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def run_cell(cell: Cell, wheel: Path, logs: Path, test_python: str) -> CellResult:
    """Run the cell; a "newest" cell that fails for a known upstream breakage is run again with the
    breakage's workaround, and that run is the cell's result (the first is kept beside it)."""
    log = logs / f"{cell.id}.log"
    log.write_text(f"cell {cell}\n")
    started = time.monotonic()
    result = run_once(cell, wheel, log, test_python)
    breakage = None if result.ok else known_breakage(cell.kind, result.versions, log.read_text(errors="replace"))
    if breakage is not None:
        with log.open("a") as out:
            out.write(f"\n== upstream breakage ({breakage.package}): the cell again, with {breakage.workaround}\n")
        first = result
        result = run_once(cell, wheel, log, test_python, pins=[breakage.workaround])
        result.upstream = {
            "breakage": asdict(breakage),
            "versions": first.versions,
            "steps": [asdict(step) for step in first.steps],
        }
    result.wall = time.monotonic() - started
    return result


def run_once(cell: Cell, wheel: Path, log: Path, test_python: str, pins: list[str] | None = None) -> CellResult:
    """
    One run of the cell's steps in a new virtualenv.

    :param pins: requirements added to the deployment's installation (an upstream workaround).
    """
    runner = Runner(cell, log)
    venv = CELLS_ROOT / cell.id
    uv_env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(venv)}
    uv_env.pop("UV_EXCLUDE_NEWER", None)
    bound = ["--exclude-newer", cell.exclude_newer] if cell.exclude_newer else []
    deployment = [f"apache-airflow=={cell.airflow}", *(PACKAGES[p] for p in PROVIDERS), *(pins or [])]
    try:
        shutil.rmtree(venv, ignore_errors=True)
        runner.run("venv", ["uv", "venv", "--quiet", "--python", interpreter(cell.python), str(venv)], uv_env)
        if cell.kind == "refused":
            check_refusal(runner, wheel, [*bound, *deployment], uv_env)
            return runner.result
        if cell.kind == "lowest":
            # Our declared dependencies as direct requirements, each at its lowest allowed version.
            requirements = [
                f"apache-airflow=={cell.airflow}",
                *declared_dependencies(wheel, EXTRA),
                f"{wheel}[{EXTRA}]",
            ]
            runner.run(
                "install (lowest)",
                ["uv", "pip", "install", "--quiet", "--resolution", "lowest-direct", *bound, *requirements],
                uv_env,
            )
            before = installed_versions(venv)
        else:
            runner.run("install deployment", ["uv", "pip", "install", "--quiet", *bound, *deployment], uv_env)
            before = installed_versions(venv)
            # As `pip install airflow-ecr` into that deployment: no date bound, nothing upgraded needlessly.
            runner.run("install airflow-ecr", ["uv", "pip", "install", "--quiet", f"{wheel}[{EXTRA}]"], uv_env)
        after = installed_versions(venv)
        runner.result.versions = after
        runner.check(
            "Airflow unchanged",
            before.get("airflow") == after.get("airflow") == cell.airflow,
            f"Airflow {before.get('airflow')} before, {after.get('airflow')} after installing airflow-ecr",
        )
        # The test tools, without moving anything the deployment has.
        frozen = venv / "deployment.txt"
        frozen.write_text(subprocess.run(["uv", "pip", "freeze"], env=uv_env, capture_output=True, text=True).stdout)
        runner.run(
            "install test tools",
            ["uv", "pip", "install", "--quiet", "-c", str(frozen), *TEST_TOOLS, f"{wheel}[testing]"],
            uv_env,
        )
        # The tests' lab (lab/, never in the wheel): its DAGs read lab.json with it. No dependency of
        # its own moves: airflow-ecr is the wheel above, and the rest is the deployment's.
        runner.run("install the lab", ["uv", "pip", "install", "--quiet", "--no-deps", str(ROOT / "lab")], uv_env)
        test_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN", "VIRTUAL"))}
        test_env["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix=f"compat-{cell.id}-")
        # As in every deployment (Airflow writes one into a new airflow.cfg); without it, NullFernet.
        test_env["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
        unit = [str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q", *UNIT_WORKERS]
        # From the test environment, driving the cell's `airflow`: the cell is named by its venv.
        tests = [test_python, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
        cell_env = {**os.environ, "AIRFLOW_ECR_CELL_VENV": str(venv)}
        ui_env = {**os.environ, "AIRFLOW_ECR_UI_VENVS": str(venv)}
        # The deployment first: an upstream breakage shows there within seconds (Airflow's own
        # `airflow connections add`), and ends a run that the workaround's run will repeat anyway.
        steps = [
            ("deployment tests", [*tests, "tests/compat"], cell_env),
            ("unit tests", [*unit, "tests/unit", *UNIT_DESELECT], test_env),
        ]
        if cell.ui:
            steps.append(("connection form in Chromium", [*tests, "tests/ui"], ui_env))
        for name, argv, env in steps:
            runner.run(name, argv, env, fatal=False)
            if not runner.result.ok and known_breakage(cell.kind, after, log.read_text(errors="replace")):
                break
    except StepFailed:
        pass
    except (subprocess.SubprocessError, OSError, SystemExit) as err:
        runner.result.steps.append(Step("setup", False, 0.0, str(err)))
    if runner.result.ok:
        shutil.rmtree(venv, ignore_errors=True)  # kept only to debug a failure
    return runner.result


def check_refusal(runner: Runner, wheel: Path, deployment: list[str], uv_env: dict[str, str]) -> None:
    """On an unsupported Airflow: the metadata refuses the install, and a forced install refuses to import."""
    venv = Path(uv_env["VIRTUAL_ENV"])
    runner.run("install deployment", ["uv", "pip", "install", "--quiet", *deployment], uv_env)
    runner.result.versions = installed_versions(venv)
    # With the deployment's Airflow pinned in the same command, as Airflow's installation guide says
    # to install anything into it (unpinned, pip would upgrade Airflow itself to satisfy us).
    pinned = f"apache-airflow=={runner.result.versions['airflow']}"
    done = subprocess.run(["uv", "pip", "install", pinned, str(wheel)], env=uv_env, capture_output=True, text=True)
    runner.check(
        "pip refuses airflow-ecr",
        done.returncode != 0 and "apache-airflow>=2.11" in done.stderr,
        " ".join(done.stderr.split())[-300:],
    )
    runner.run("forced install", ["uv", "pip", "install", "--quiet", "--no-deps", str(wheel)], uv_env)
    code = "import airflow_ecr.operators.docker"
    env = {
        **os.environ,
        "AIRFLOW_HOME": tempfile.mkdtemp(prefix="compat-refused-"),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
    }
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], env=env, capture_output=True, text=True)
    last = (done.stderr.strip().splitlines() or [""])[-1]
    runner.check(
        "import refuses in one sentence",
        done.returncode != 0
        and last.startswith("airflow_ecr._compat.UnsupportedAirflowError: airflow-ecr needs Airflow 2.11 or any 3.x")
        and "ModuleNotFoundError" not in done.stderr,
        last,
    )


# -- results and their tables ---------------------------------------------------------------------
def load_results(path: Path = RESULTS) -> dict[str, dict]:
    try:
        return {r["cell"]["id"]: r for r in json.loads(path.read_text())["cells"]}
    except (OSError, ValueError, KeyError):
        return {}


def save_results(results: dict[str, dict], path: Path = RESULTS) -> None:
    """Write the results to ``path`` whole (a temp file renamed over it): a reader never sees half of it."""
    order = [c.id for c in CELLS]
    cells = sorted(results.values(), key=lambda r: order.index(r["cell"]["id"]) if r["cell"]["id"] in order else 99)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({"cells": cells}, indent=2) + "\n")
    os.replace(partial, path)


def table(results: dict[str, dict]) -> str:
    """The Markdown table of the README and docs/compatibility.md, from the saved results."""
    columns = ["Airflow", "Python", "deployment", "docker provider", "amazon provider", "cncf.kubernetes provider"]
    columns += ["common-compat"]
    columns += ["cryptography", "outcome", "minutes", "measured"]
    rows = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    breakages: dict[str, dict] = {}
    for cell in CELLS:
        result = results.get(cell.id)
        if result is None:
            continue
        v = result["versions"]
        kind = {
            "era": f"era: as of {cell.exclude_newer}²",
            "newest": "newest, as resolved that day",
            "lowest": f"our minimums, as of {cell.exclude_newer}"
            if cell.exclude_newer and not cell.why_bound
            else "our minimums",
        }.get(cell.kind, f"as of {cell.exclude_newer}")
        if cell.why_bound:
            kind += f" (bounded at {cell.exclude_newer}¹)"
        steps = result["steps"]
        failed = [s["name"] for s in steps if not s["ok"]]
        if not steps or failed:
            outcome = "FAIL: " + (failed[0] if failed else "no steps ran")
        else:
            outcome = "refused, as it must be" if cell.kind == "refused" else "pass"
        upstream = result.get("upstream")
        if upstream:
            breakage = upstream["breakage"]
            breakages[breakage["workaround"]] = breakage
            found = upstream["versions"].get(breakage["package"], "?")
            outcome = f"upstream breakage: {breakage['package']} {found}³; with `{breakage['workaround']}`: {outcome}"
        # Earlier results have no wall time: their steps ran one after the other.
        seconds = result.get("wall") or sum(s["seconds"] for s in steps)
        values = [v.get("airflow", cell.airflow), cell.python, kind, v.get("docker", "?"), v.get("amazon", "?")]
        values.append(v.get("cncf-kubernetes", "?"))
        values += [v.get("common-compat", "-"), v.get("cryptography", "?"), outcome, f"{seconds / 60:.1f}"]
        values.append(result["measured"])
        rows.append("| " + " | ".join(values) + " |")
    notes = []
    bounded = [c for c in CELLS if c.why_bound and c.id in results]
    if bounded:
        versions = " and ".join(sorted({c.airflow for c in bounded}))
        notes.append(f"¹ Bounded by date because on Airflow {versions} {bounded[0].why_bound}.")
    if any(c.kind == "era" and c.id in results for c in CELLS):
        notes.append(
            "² Resolved as a deployment built a few weeks after that release would have been. It stands in "
            "for Airflow's own constraints file of the release, which this matrix could not obtain "
            "(docs/compatibility.md says why)."
        )
    for breakage in breakages.values():
        notes.append(
            f"³ Upstream, not airflow-ecr: {breakage['what']}. The cell first failed as resolved that day "
            f'(its output showed "{breakage["symptom"]}"), then ran again with `{breakage["workaround"]}`; '
            "that run is its outcome."
        )
    return "\n\n".join(["\n".join(rows), *notes])


def render(results: dict[str, dict]) -> None:
    for path in (DOC, README):
        text = path.read_text()
        start, end = "<!-- compat-table:start -->", "<!-- compat-table:end -->"
        if start not in text:
            raise SystemExit(f"compat: {path} has no {start} marker")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        path.write_text(f"{head}{start}\n{table(results)}\n{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", help="comma-separated cell ids (default: all)")
    parser.add_argument("--render", action="store_true", help="only rewrite the tables from the saved results")
    parser.add_argument("--list", action="store_true", help="list the cells")
    # scripts/test.sh runs the matrix beside the test suite, whose tests/unit/test_compat_tables.py
    # reads docs/compatibility.json and the tables: rewriting them meanwhile could fail that test
    # (results and tables briefly disagree). So that run saves elsewhere, and adopts at the end.
    parser.add_argument(
        "--save-to",
        type=Path,
        metavar="FILE",
        help="save the results to FILE (the saved results plus this run's), leaving docs/compatibility.json "
        "and the tables alone until --adopt FILE",
    )
    parser.add_argument(
        "--adopt", type=Path, metavar="FILE", help="make FILE (from --save-to) the saved results and render the tables"
    )
    args = parser.parse_args(argv)
    if args.list:
        for cell in CELLS:
            print(cell.id)
        return 0
    if args.adopt:
        adopted = load_results(args.adopt)
        if not adopted:
            parser.error(f"{args.adopt} holds no results of the matrix")
        save_results(adopted)
        render(adopted)
        return 0
    results = load_results()
    if args.render:
        render(results)
        return 0
    chosen = CELLS if not args.cells else [c for c in CELLS if c.id in args.cells.split(",")]
    if not chosen:
        parser.error(f"no such cell: {args.cells} (see --list)")
    if not os.environ.get("AIRFLOW_ECR_LAB_DIR"):
        parser.error("the lab must be up: set AIRFLOW_ECR_LAB_DIR (scripts/test.sh does)")
    CELLS_ROOT.mkdir(parents=True, exist_ok=True)
    logs = CELLS_ROOT / "logs"
    logs.mkdir(exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="airflow-ecr-wheel-") as out:
        wheel = build_wheel(Path(out))
        print(f"compat: built {wheel.name}; {len(chosen)} cells", flush=True)
        failed = []
        for cell in chosen:
            result = run_cell(cell, wheel, logs, sys.executable)
            results[cell.id] = {**asdict(result), "cell": asdict(cell)}
            if args.save_to:
                save_results(results, args.save_to)
            else:
                save_results(results)
                render(results)
            status = "pass" if result.ok else f"FAIL (see {logs / (cell.id + '.log')})"
            print(
                f"compat: {cell.id:<24} {status:<6} {result.seconds:6.0f} s  "
                + ", ".join(f"{s.name} {s.seconds:.0f}s{'' if s.ok else ' FAILED'}" for s in result.steps if s.seconds),
                flush=True,
            )
            if not result.ok:
                failed.append(cell.id)
                for step in result.steps:
                    if not step.ok:
                        print(f"compat:   {step.name}: {step.detail}", flush=True)
    print(f"compat: {len(chosen) - len(failed)} passed, {len(failed)} failed in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
