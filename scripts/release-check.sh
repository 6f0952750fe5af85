#!/usr/bin/env bash
# Release check: what a user gets from `pip install airflow-ecr`, checked before it is published.
#
#   bash scripts/release-check.sh [REF]
#
# From a clean export of the tree (the working tree's tracked and untracked, not ignored, files;
# or `git archive REF`), builds the sdist and, from it, the wheel with `uv build`; runs
# `twine check --strict` on both; checks what the wheel ships (py.typed, the example DAGs, the
# provider entry point, the console script, the docs pages, the license), its version, and that
# the PyPI description has no relative link; installs the wheel with its [testing] extra into a
# new virtualenv, resolved from PyPI as users install it (not editable, not our lock: the newest
# Airflow); imports every module of the package there, has Airflow discover the provider, and runs
# `airflow-ecr --version` and `airflow-ecr docs`. Prints one summary line; on failure, the relevant
# output and then one sentence, exit code 1. Writes nothing in the repository (all in a temporary
# directory, removed at exit).
#
# Python: $AIRFLOW_ECR_RELEASE_PYTHON, default the interpreter of .venvs/af3 (3.11); twine from
# .venvs/af3 (locked). Needs PyPI (about 20 s with a warm uv cache).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ref=${1:-}
python=${AIRFLOW_ECR_RELEASE_PYTHON:-$root/.venvs/af3/bin/python}
twine=${AIRFLOW_ECR_RELEASE_TWINE:-$root/.venvs/af3/bin/twine}
export UV_PYTHON_DOWNLOADS=never
started=$(date +%s)

work=$(mktemp -d /tmp/airflow-ecr-release.XXXXXX)
trap 'rm -rf "$work"' EXIT
log="$work/log"

fail() {
  # The output of the failed step first (if any), then one sentence.
  if [ -s "$log" ]; then tail -n 40 "$log" >&2; fi
  echo "release-check: FAILED: $*" >&2
  exit 1
}
step() { : >"$log"; "$@" >>"$log" 2>&1; }
# A failed check whose last output line is its sentence: the sentence alone, unless there is more.
fail_last() {
  local sentence
  sentence=$(tail -n 1 "$log")
  [ "$(wc -l <"$log")" -gt 1 ] || : >"$log"
  fail "$sentence"
}

for tool in uv git; do
  command -v "$tool" >/dev/null || fail "$tool is not on PATH."
done
[ -x "$python" ] || fail "no Python at $python (scripts/venvs.sh 3, or set AIRFLOW_ECR_RELEASE_PYTHON)."
[ -x "$twine" ] || fail "no twine at $twine (scripts/venvs.sh 3, or set AIRFLOW_ECR_RELEASE_TWINE)."

# -- a clean export --------------------------------------------------------------------------------
tree="$work/tree"
mkdir "$tree"
if [ -n "$ref" ]; then
  step git -C "$root" archive --format=tar -o "$work/tree.tar" "$ref" || fail "git archive $ref failed."
  tar -xf "$work/tree.tar" -C "$tree"
else
  # What `git add -A` would commit: files deleted from the work tree are left out.
  (cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' path; do [ -e "$path" ] && printf '%s\0' "$path"; done \
    | tar --null -T - -cf -) | tar -xf - -C "$tree"
fi
[ -f "$tree/pyproject.toml" ] || fail "the export has no pyproject.toml."
version=$(sed -nE 's/^__version__ = "([^"]+)"$/\1/p' "$tree/src/airflow_ecr/__init__.py")
[ -n "$version" ] || fail "no __version__ = \"...\" line in src/airflow_ecr/__init__.py."

# -- build and twine check --------------------------------------------------------------------------
dist="$work/dist"
# From the export's directory: the build sees no file of the repository outside the export.
step uv build --quiet --python "$python" --out-dir "$dist" "$tree" || fail "uv build failed."
wheel=$(ls "$dist"/airflow_ecr-*.whl 2>/dev/null || true)
sdist=$(ls "$dist"/airflow_ecr-*.tar.gz 2>/dev/null || true)
[ -n "$wheel" ] && [ -n "$sdist" ] || fail "uv build made no wheel or no sdist ($(ls "$dist"))."
[ "$(basename "$wheel")" = "airflow_ecr-$version-py3-none-any.whl" ] \
  || fail "the wheel is $(basename "$wheel"), not version $version of __init__.py."
step "$twine" check --strict "$wheel" "$sdist" || fail "twine check --strict rejects the wheel or the sdist."

# -- what the wheel and the sdist hold ---------------------------------------------------------------
: >"$log"
"$python" - "$wheel" "$sdist" "$tree" "$version" >>"$log" 2>&1 <<'EOF' || fail_last
import re, sys, tarfile, zipfile
from pathlib import Path

wheel, sdist, tree, version = sys.argv[1:]
tree = Path(tree)
names = set(zipfile.ZipFile(wheel).namelist())
info = f"airflow_ecr-{version}.dist-info"
problems = []
expected = {"airflow_ecr/py.typed", "airflow_ecr/provider_info.py", f"{info}/licenses/LICENSE"}
expected |= {f"airflow_ecr/example_dags/{p.name}" for p in (tree / "src/airflow_ecr/example_dags").glob("*.py")}
expected |= {f"airflow_ecr/docs/{p.relative_to(tree / 'docs').as_posix()}" for p in (tree / "docs").rglob("*.md")}
problems += [f"the wheel lacks {name}" for name in sorted(expected - names)]
problems += [f"the wheel holds {n}, which is no part of the package" for n in sorted(names)
             if not n.startswith(("airflow_ecr/", f"{info}/")) or n.endswith((".pyc", "docs/hooks.py"))]
with zipfile.ZipFile(wheel) as z:
    entry_points = z.read(f"{info}/entry_points.txt").decode()
    metadata = z.read(f"{info}/METADATA").decode()
if "[apache_airflow_provider]\nprovider_info = airflow_ecr.provider_info:get_provider_info" not in entry_points:
    problems.append("the wheel has no apache_airflow_provider entry point")
if "airflow-ecr = airflow_ecr.cli:main" not in entry_points:
    problems.append("the wheel has no airflow-ecr console script")
if "docker-credential-airflow-ecr = airflow_ecr.credential_helper.protocol:main" not in entry_points:
    problems.append("the wheel has no docker-credential-airflow-ecr console script")
for field in (f"Version: {version}", "License-Expression: Apache-2.0", "Requires-Python: ", "Project-URL: Documentation"):
    if f"\n{field}" not in metadata:
        problems.append(f"the wheel's METADATA has no {field.strip()!r}")
# PyPI shows the description away from the repository: a relative link or image would be broken.
relative = re.findall(r"\]\((?!https?://|#|mailto:)[^)\s]+\)", metadata.partition("\n\n")[2])
if relative:
    problems.append(f"the PyPI description has relative links {relative[:3]}")
top = f"airflow_ecr-{version}/"
members = set(tarfile.open(sdist).getnames())
for name in ("pyproject.toml", "hatch_build.py", "README.md", "LICENSE", "CHANGELOG.md", "src/airflow_ecr/__init__.py"):
    if top + name not in members:
        problems.append(f"the sdist lacks {name}")
problems += [f"the sdist holds {n}" for n in sorted(members) if n.startswith((top + ".venvs/", top + "dist/"))]
if problems:
    print("; ".join(problems[:5]) + ("" if len(problems) <= 5 else f" (and {len(problems) - 5} more)") + ".")
    sys.exit(1)
print(f"wheel: {len(names)} files")
EOF
wheel_files=$(sed -n 's/^wheel: //p' "$log")

# -- install it as a user would ---------------------------------------------------------------------
venv="$work/venv"
step uv venv --quiet --python "$python" "$venv" || fail "uv venv --python $python failed."
# From the temporary directory: no project configuration or lock of the repository applies.
# With both extras, so that every module imports (the Kubernetes ones need the cncf.kubernetes provider).
(cd "$work" && step uv pip install --quiet --python "$venv/bin/python" "airflow-ecr[testing,kubernetes] @ file://$wheel") \
  || fail "installing the wheel with its [testing] and [kubernetes] extras from PyPI failed."

# A bare environment: nothing of the developer's Airflow, AWS or Python path settings.
run_clean() {
  env -i PATH="$venv/bin:/usr/bin:/bin" HOME="$work/home" LANG=C.UTF-8 AIRFLOW_HOME="$work/airflow" \
    AIRFLOW__CORE__LOAD_EXAMPLES=False AWS_EC2_METADATA_DISABLED=true "$@"
}
mkdir -p "$work/home"
: >"$log"
run_clean "$venv/bin/python" - "$venv" "$version" >>"$log" 2>&1 <<'EOF' || fail_last
import importlib, pkgutil, sys, warnings

venv, version = sys.argv[1:]
warnings.simplefilter("ignore")
import airflow_ecr

if not airflow_ecr.__file__.startswith(venv):
    sys.exit(f"airflow_ecr was imported from {airflow_ecr.__file__}, not from the new virtualenv.")
failed = []
names = ["airflow_ecr"]
for module in pkgutil.walk_packages(airflow_ecr.__path__, "airflow_ecr.", onerror=lambda name: None):
    names.append(module.name)
for name in names:
    try:
        importlib.import_module(name)
    except BaseException as err:  # SystemExit from a module is a failure too
        failed.append(f"{name} ({type(err).__name__}: {' '.join(str(err).split())[:200]})")
if failed:
    sys.exit(f"{len(failed)} of {len(names)} modules do not import: {'; '.join(failed[:3])}.")
try:
    from airflow.providers_manager import ProvidersManager
except ImportError as err:
    sys.exit(f"Airflow's ProvidersManager cannot be imported: {err}.")
provider = ProvidersManager().providers.get("airflow-ecr")
if provider is None or provider.version != version:
    sys.exit(f"Airflow does not discover the provider airflow-ecr {version} (found: {provider}).")
import airflow

print(f"modules: {len(names)}; airflow: {airflow.__version__}; python: {sys.version.split()[0]}")
EOF
facts=$(sed -n 's/^modules: //p' "$log")
modules=${facts%%;*}
airflow_version=$(sed -nE 's/.*airflow: ([^;]+);.*/\1/p' <<<"$facts")
python_version=${facts##*python: }

: >"$log"
said=$(run_clean "$venv/bin/airflow-ecr" --version 2>>"$log") || fail "airflow-ecr --version failed."
[ "$said" = "airflow-ecr $version" ] || fail "airflow-ecr --version says '$said', not 'airflow-ecr $version'."
title=$(run_clean "$venv/bin/airflow-ecr" docs quickstart 2>>"$log" | head -n 1) || true
[ "$title" = "# Quickstart" ] || fail "airflow-ecr docs quickstart does not print the shipped page (got '$title')."

echo "release-check: OK airflow-ecr $version: wheel ($wheel_files) and sdist pass twine check --strict;" \
  "installed from PyPI with Airflow $airflow_version on Python $python_version, $modules modules import," \
  "provider discovered, --version and docs work ($(($(date +%s) - started)) s)"
