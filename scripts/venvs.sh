#!/usr/bin/env bash
# Create (or bring up to date) the locked test environments: .venvs/af3 (Airflow 3) and .venvs/af2
# (Airflow 2.11), each with airflow-ecr and its lab (lab/) installed editable. Usage: scripts/venvs.sh [3] [2]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.9"
versions=("$@"); [ ${#versions[@]} -gt 0 ] || versions=(3 2)
for v in "${versions[@]}"; do
  venv="$root/.venvs/af$v"
  [ -x "$venv/bin/python" ] || uv venv --quiet --python 3.11 "$venv"
  # sync: exactly the locked set, so a stale environment cannot hide a missing pin.
  VIRTUAL_ENV="$venv" uv pip sync --quiet "$root/requirements/airflow-$v.txt"
  # The project and its development lab (lab/: the test rig, never in the wheel).
  VIRTUAL_ENV="$venv" uv pip install --quiet --no-deps -e "$root" -e "$root/lab"
  echo "venv af$v: $("$venv/bin/python" -c 'import airflow; print("Airflow", airflow.__version__)')"
done
