#!/usr/bin/env bash
# Install Debian packages (as root). Usage: scripts/setup-debian.sh [demo]
#   demo: only what scripts/demo.sh needs: the lab's Docker engine, registry and namespace tools
#         (airflow_ecr_lab's DEBIAN_PACKAGES) and the certificates pip and uv download with;
#   (no argument): those and what only the tests and the benchmark use.
# Idempotent and quiet: does nothing when everything is already installed, else one `apt-get update`
# and one install. tests/unit/test_lab_setup.py keeps demo_packages a superset of the lab's list.
set -euo pipefail
demo_packages=(docker.io docker-registry util-linux iproute2 busybox-static python3.11 ca-certificates)
# PostgreSQL and Redis: the Celery and database tests; Chromium and its driver: the connection-form
# UI tests; the credential helper: the tests and benchmark that compare airflow-ecr with it.
test_packages=(postgresql redis-server chromium chromium-driver amazon-ecr-credential-helper)
case "${1:-all}" in
  demo) packages=("${demo_packages[@]}") ;;
  all) packages=("${demo_packages[@]}" "${test_packages[@]}") ;;
  *) echo "setup-debian: usage: setup-debian.sh [demo]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-debian: run as root (apt-get install)" >&2
  exit 1
fi
missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-debian: all ${#packages[@]} packages present"
  exit 0
fi
echo "setup-debian: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-debian: done"
