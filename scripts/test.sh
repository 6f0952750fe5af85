#!/usr/bin/env bash
# All tests: installs and starts everything they need (Debian packages, locked Python environments for
# Airflow 3 and 2.11, a Docker engine, ECR-style registries, the ECR emulator), runs lint, type checks,
# the release check, pytest and the compatibility matrix, then stops what it started. Extra arguments
# go to the Airflow 3 pytest run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-debian.sh
# The Kubernetes servers for tests/e2e/test_kubernetes.py: built once (about 4 minutes on 2 cores),
# then cached outside the checkout; built beside the environments, lint and the release check.
k8s_log=$(mktemp /tmp/airflow-ecr-k8s-binaries.XXXXXX.log)
setsid bash scripts/k8s-binaries.sh >"$k8s_log" 2>&1 &
k8s_pid=$!
lab_started=""
stop_started() {
  kill -- -"$k8s_pid" 2>/dev/null || true  # the build and its children, by their group
  [ -z "$lab_started" ] || "$root/.venvs/af3/bin/python" -m airflow_ecr_lab down --dir "$lab_started" --purge
}
trap stop_started EXIT
bash scripts/venvs.sh 3 2
af3="$root/.venvs/af3/bin"

echo "== lint and types"
"$af3/ruff" check src lab tests benchmarks scripts docs/hooks.py
"$af3/ruff" format --check src lab tests benchmarks scripts docs/hooks.py
"$af3/mypy"

echo "== release check"
bash scripts/release-check.sh

if [ -n "${AIRFLOW_ECR_LAB_DIR:-}" ] && [ -f "$AIRFLOW_ECR_LAB_DIR/lab.json" ]; then
  echo "== reusing the lab in $AIRFLOW_ECR_LAB_DIR"
else
  export AIRFLOW_ECR_LAB_DIR=$(mktemp -d /tmp/airflow-ecr-lab.XXXXXX)
  lab_started="$AIRFLOW_ECR_LAB_DIR"
  "$af3/python" -m airflow_ecr_lab up --dir "$AIRFLOW_ECR_LAB_DIR" --swarm
fi

if ! wait "$k8s_pid"; then
  cat "$k8s_log" >&2
  echo "test.sh: the Kubernetes servers could not be built (log above)" >&2
  exit 1
fi
echo "== Kubernetes servers: $(tail -n 1 "$k8s_log")"
rm -f "$k8s_log"

echo "== all tests on Airflow 3 (the Airflow process tests run both versions)"
# tests/ui (the connection form in Chromium) runs in the matrix, on its Airflow 2.11 and 3 cells.
"$af3/python" -m pytest -p no:cacheprovider --durations=15 --ignore=tests/ui "$@" tests
echo "== compatibility matrix (the unit tests on every Airflow and Python, as users install it)"
"$af3/python" scripts/compat.py
