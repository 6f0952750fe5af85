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
# The compatibility matrix runs beside the Airflow 3 pytest run (about 20 and 30 minutes: one after
# the other they took 50 of CI's 60), on a lab of its own so that emulator call counts, faults, token
# policies and registries are never shared by the two streams. Its output goes to a log, shown at the end.
matrix_lab="" matrix_pid="" matrix_log="" matrix_results=""
stop_started() {
  kill -- -"$k8s_pid" 2>/dev/null || true  # the build and its children, by their group
  [ -z "$matrix_pid" ] || kill -- -"$matrix_pid" 2>/dev/null || true  # the matrix and its cells, by their group
  [ -z "$lab_started" ] || "$root/.venvs/af3/bin/python" -m airflow_ecr_lab down --dir "$lab_started" --purge
  [ -z "$matrix_lab" ] || "$root/.venvs/af3/bin/python" -m airflow_ecr_lab down --dir "$matrix_lab" --purge
  [ -z "$matrix_results" ] || rm -f "$matrix_results"
}
trap stop_started EXIT
bash scripts/venvs.sh 3 2
af3="$root/.venvs/af3/bin"

echo "== compatibility matrix, in the background (the unit tests on every Airflow and Python, as users install it)"
matrix_lab=$(mktemp -d /tmp/airflow-ecr-matrix-lab.XXXXXX)
"$af3/python" -m airflow_ecr_lab up --dir "$matrix_lab" --swarm
matrix_log=$(mktemp /tmp/airflow-ecr-matrix.XXXXXX.log)
matrix_results=$(mktemp /tmp/airflow-ecr-matrix.XXXXXX.json)
echo "== the matrix's output: $matrix_log (shown when it ends)"
# Niced: the pytest run's Airflow processes have timeouts, the matrix only generous ones; on 2 cores
# the pytest run keeps one core and the matrix takes the rest. It saves its results aside
# (--save-to) because the pytest run reads docs/compatibility.json and the tables it would rewrite.
AIRFLOW_ECR_LAB_DIR="$matrix_lab" setsid nice -n 10 "$af3/python" scripts/compat.py --save-to "$matrix_results" \
  </dev/null >"$matrix_log" 2>&1 &
matrix_pid=$!

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
pytest_status=0
"$af3/python" -m pytest -p no:cacheprovider --durations=15 --ignore=tests/ui "$@" tests || pytest_status=$?

echo "== compatibility matrix (started beside the pytest run; its output from $matrix_log)"
matrix_status=0
wait "$matrix_pid" || matrix_status=$?
matrix_pid=""
cat "$matrix_log"
rm -f "$matrix_log"
# The tables of this run's results, now that no test reads them any more (cells that failed included,
# as a run in the foreground would have saved them).
[ ! -s "$matrix_results" ] || "$af3/python" scripts/compat.py --adopt "$matrix_results"

[ "$pytest_status" -eq 0 ] || echo "test.sh: the Airflow 3 pytest run failed (exit $pytest_status; output above)" >&2
[ "$matrix_status" -eq 0 ] || echo "test.sh: the compatibility matrix failed (exit $matrix_status; output above)" >&2
[ "$pytest_status" -eq 0 ] && [ "$matrix_status" -eq 0 ]
