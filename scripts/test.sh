#!/usr/bin/env bash
# All tests: installs and starts everything they need (Debian packages, locked Python environments for
# Airflow 3 and 2.11, a Docker engine, ECR-style registries, the ECR emulator), runs lint, type checks,
# the release check, pytest and the compatibility matrix, then stops what it started. Extra arguments
# go to the Airflow 3 pytest run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-debian.sh
bash scripts/venvs.sh 3 2
af3="$root/.venvs/af3/bin"

echo "== lint and types"
"$af3/ruff" check src tests benchmarks scripts docs/hooks.py
"$af3/ruff" format --check src tests benchmarks scripts docs/hooks.py
"$af3/mypy"

echo "== release check"
bash scripts/release-check.sh

if [ -n "${AIRFLOW_ECR_LAB_DIR:-}" ] && [ -f "$AIRFLOW_ECR_LAB_DIR/lab.json" ]; then
  echo "== reusing the lab in $AIRFLOW_ECR_LAB_DIR"
else
  export AIRFLOW_ECR_LAB_DIR=$(mktemp -d /tmp/airflow-ecr-lab.XXXXXX)
  trap '"$af3/python" -m airflow_ecr.testing.lab down --dir "$AIRFLOW_ECR_LAB_DIR" --purge' EXIT
  "$af3/python" -m airflow_ecr.testing.lab up --dir "$AIRFLOW_ECR_LAB_DIR" --swarm
fi

echo "== all tests on Airflow 3 (the Airflow process tests run both versions)"
# tests/ui (the connection form in Chromium) runs in the matrix, on its Airflow 2.11 and 3 cells.
"$af3/python" -m pytest -p no:cacheprovider --durations=15 --ignore=tests/ui "$@" tests
echo "== compatibility matrix (the unit tests on every Airflow and Python, as users install it)"
"$af3/python" scripts/compat.py
