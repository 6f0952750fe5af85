#!/usr/bin/env bash
# The demo: install what is needed, start the lab (a Docker engine, two ECR-style registries and the
# bundled ECR API emulator), then let real Airflow 3 run example_ecr_docker, which pulls an image by
# its ECR name with a token from the emulator and runs it. Everything started is stopped at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-debian.sh
bash scripts/venvs.sh 3
py="$root/.venvs/af3/bin/python"

work=$(mktemp -d /tmp/airflow-ecr-demo.XXXXXX)
lab="$work/lab"
cleanup() {
  "$py" -m airflow_ecr.testing.lab down --dir "$lab" --purge >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"$py" -m airflow_ecr.testing.lab up --dir "$lab"

lab_get() { "$py" -c "import json,sys; print(eval('d'+sys.argv[1], {'d': json.load(open('$lab/lab.json'))}))" "$1"; }
export AIRFLOW_HOME="$work/airflow"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$root/src/airflow_ecr/example_dags"
export AIRFLOW__ECR__CACHE_DIR="$work/ecr-cache"
export DOCKER_HOST=$(lab_get '["docker_host"]')
export AIRFLOW_ECR_EXAMPLE_NETWORK_MODE=none
export AIRFLOW_CONN_AWS_DEFAULT=$("$py" -c 'import json,sys; print(json.dumps({"conn_type": "aws", "login": "demo", "password": "demo", "extra": {"region_name": "eu-west-1", "endpoint_url": sys.argv[1]}}))' "$(lab_get '["emulator_url"]')")
"$root/.venvs/af3/bin/airflow" db migrate >/dev/null 2>&1
echo "Running example_ecr_docker with Airflow $("$py" -c 'import airflow; print(airflow.__version__)') ..."
out=$("$root/.venvs/af3/bin/airflow" dags test example_ecr_docker 2>&1) || { echo "$out" | tail -40; echo "DEMO FAILED"; exit 1; }
# The story in four lines: the pull, the container's output, the result.
echo "$out" | grep -E "Pulling docker image|Pulling from|hello from an ECR image|DagRun Finished" \
  | sed -E 's/^[0-9T:.Z-]+ \[[a-z ]+\] +//; s/ +\[airflow[^]]*\].*//; s/(state=[a-z]+).*/\1/' 
if echo "$out" | grep -q "hello from an ECR image"; then
  echo "DEMO OK: the image was pulled from the emulated ECR with an automatically obtained token and ran."
else
  echo "$out" | tail -40; echo "DEMO FAILED: the container's output is missing"; exit 1
fi
