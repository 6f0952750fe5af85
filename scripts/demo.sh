#!/usr/bin/env bash
# The demo: install what it needs (the lab's Debian packages, not the test suite's), start the lab (a
# Docker engine, two ECR-style registries and the bundled ECR API emulator), then let real Airflow 3
# run example_ecr_docker, which pulls an image by its ECR name with a token from the emulator and
# runs it. It prints the DAG file, the image, the ECR calls the run made and what to read next. The
# lab's processes are stopped at the end; its work directory and logs are kept (it says where).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$(date +%s)
bash scripts/setup-debian.sh demo
bash scripts/venvs.sh 3
py="$root/.venvs/af3/bin/python"

# Short: the lab's unix sockets live below it and must stay under 108 characters.
work=$(mktemp -d /tmp/airflow-ecr-demo.XXXXXX)
lab="$work/lab"
log="$work/dags-test.log"
finish() {
  "$py" -m airflow_ecr_lab down --dir "$lab" >/dev/null 2>&1 || true
  echo
  echo "Kept (the lab's processes are stopped):"
  echo "  $work   the demo's work directory: Airflow home and database, token cache"
  echo "  $log   airflow dags test's whole output, with the task's log"
  echo "  $lab   the lab: dockerd's, the emulator's and the proxy's logs"
  echo "Remove them with: rm -rf $work"
}
trap finish EXIT
"$py" -m airflow_ecr_lab up --dir "$lab"

lab_get() { "$py" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$lab/lab.json" "$1"; }
emulator_url=$(lab_get emulator_url)
# A key of its own: the emulator's admin API then lists exactly this run's ECR calls.
access_key="demo-$(date +%s)"
export AIRFLOW_HOME="$work/airflow"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$root/src/airflow_ecr/example_dags"
export AIRFLOW__ECR__CACHE_DIR="$work/ecr-cache"
export DOCKER_HOST=$(lab_get docker_host)
export AIRFLOW_ECR_EXAMPLE_NETWORK_MODE=none
export AIRFLOW_CONN_AWS_DEFAULT=$("$py" -c 'import json,sys; print(json.dumps({"conn_type": "aws", "login": sys.argv[1], "password": "demo", "extra": {"region_name": "eu-west-1", "endpoint_url": sys.argv[2]}}))' "$access_key" "$emulator_url")
"$root/.venvs/af3/bin/airflow" db migrate >"$work/db-migrate.log" 2>&1

dag_file="$AIRFLOW__CORE__DAGS_FOLDER/example_ecr_docker.py"
image=$("$py" -c 'import runpy,sys; print(runpy.run_path(sys.argv[1])["IMAGE"])' "$dag_file" 2>/dev/null)
echo
echo "DAG file: $dag_file"
echo "Image:    $image"
echo "Running example_ecr_docker with Airflow $("$py" -c 'import airflow; print(airflow.__version__)') (output in $log) ..."
status=0
"$root/.venvs/af3/bin/airflow" dags test example_ecr_docker >"$log" 2>&1 || status=$?
# The story in four lines: the pull, the container's output, the result.
grep -E "Pulling docker image|Pulling from|hello from an ECR image|DagRun Finished" "$log" \
  | grep -v "'echo'" \
  | sed -E 's/^[0-9T:.Z-]+ \[[a-z ]+\] +//; s/^::group:://; s/ +\[airflow[^]]*\].*//; s/(state=[a-z]+).*/\1/' || true
echo
echo "ECR API calls of this run (the emulator's admin API, $emulator_url/_emulator/calls):"
"$py" - "$lab/lab.json" "$access_key" <<'PY'
import collections
import json
import sys

from airflow_ecr_lab import emulator_client

with open(sys.argv[1]) as lab_json:
    calls = emulator_client(json.load(lab_json)).calls(access_key=sys.argv[2])
counted = collections.Counter(
    (c["target"].rpartition(".")[2], c["region"], ",".join(c["registry_ids"] or ["(default)"]), c["outcome"]) for c in calls
)
for (operation, region, registries, outcome), count in sorted(counted.items()):
    print(f"  {count} x {operation}  region {region}  registry {registries}  -> {outcome}")
if not calls:
    print("  none")
PY
if [ "$status" -ne 0 ] || ! grep -q "hello from an ECR image" "$log"; then
  tail -40 "$log"
  echo "DEMO FAILED (airflow dags test exit code $status): the whole output is in $log"
  exit 1
fi
echo
echo "DEMO OK in $(( $(date +%s) - started )) s: the image was pulled from the emulated ECR with an automatically obtained token and ran."
echo "Next, read:"
echo "  1. docs/quickstart.md: the same run step by step, then the same DAG on AWS"
echo "  2. docs/modes.md: the three ways to give Docker operators ECR credentials"
echo "  3. docs/permissions.md: the IAM permissions each mode needs on AWS"
