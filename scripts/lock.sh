#!/usr/bin/env bash
# Re-pin the test environments (run after changing requirements/*.in).
set -euo pipefail
cd "$(dirname "$0")/../requirements"
for v in 3 2; do
  uv pip compile --quiet --python-version 3.11 --no-header --universal "airflow-$v.in" -o "airflow-$v.txt"
done
