#!/usr/bin/env bash
# The benchmark of airflow-ecr against the ways people pull ECR images from Airflow today: installs
# what it needs (Debian packages, the locked Airflow 3 environment), starts a lab (Docker engine,
# ECR-style registries, ECR API emulator) in a temp dir, runs benchmarks/bench.py, stops the lab.
# Writes benchmarks/results/latest.{json,md,png}. Extra arguments go to bench.py (e.g. --quick, or
# --only per-process [--profile]: the per-new-task-process figures of airflow-ecr and the helper alone;
# --only kubernetes [--tasks N]: what Kubernetes pods' pull secrets cost, benchmarks/kubernetes_pods.py;
# --only credential-helper: docker-credential-airflow-ecr against the Go helper, benchmarks/credential_helper.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-debian.sh
bash scripts/venvs.sh 3
py="$root/.venvs/af3/bin/python"

lab=$(mktemp -d /tmp/airflow-ecr-bench-lab.XXXXXX)
trap '"$py" -m airflow_ecr_lab down --dir "$lab" --purge >/dev/null 2>&1 || true' EXIT
"$py" -m airflow_ecr_lab up --dir "$lab"
if [ "${1:-}" = "--only" ] && [ "${2:-}" = "kubernetes" ]; then
  # Pods' pull secrets against the tests' Kubernetes API server (built once, then cached).
  bash scripts/k8s-binaries.sh >/dev/null
  "$py" benchmarks/kubernetes_pods.py --lab "$lab" "${@:3}"
else
  "$py" benchmarks/bench.py --lab "$lab" "$@"
fi
