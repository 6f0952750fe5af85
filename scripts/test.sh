#!/usr/bin/env bash
# All tests: installs and starts everything they need (Debian packages, locked Python environments for
# Airflow 3 and 2.11, a Docker engine, ECR-style registries, the ECR emulator), runs lint, type checks
# and pytest, then stops what it started. Extra arguments go to the Airflow 3 pytest run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-debian.sh
bash scripts/venvs.sh 3 2
af3="$root/.venvs/af3/bin"
af2="$root/.venvs/af2/bin"

echo "== lint and types"
"$af3/ruff" check src tests benchmarks docs/hooks.py
"$af3/ruff" format --check src tests benchmarks docs/hooks.py
"$af3/mypy"

if [ -n "${AIRFLOW_ECR_LAB_DIR:-}" ] && [ -f "$AIRFLOW_ECR_LAB_DIR/lab.json" ]; then
  echo "== reusing the lab in $AIRFLOW_ECR_LAB_DIR"
else
  export AIRFLOW_ECR_LAB_DIR=$(mktemp -d /tmp/airflow-ecr-lab.XXXXXX)
  trap '"$af3/python" -m airflow_ecr.testing.lab down --dir "$AIRFLOW_ECR_LAB_DIR" --purge' EXIT
  "$af3/python" -m airflow_ecr.testing.lab up --dir "$AIRFLOW_ECR_LAB_DIR" --swarm
fi

echo "== unit tests on Airflow 2.11"
"$af2/python" -m pytest -p no:cacheprovider -q tests/unit
echo "== all tests on Airflow 3 (the Airflow process tests run both versions)"
"$af3/python" -m pytest -p no:cacheprovider "$@" tests
