#!/usr/bin/env bash
# Install the Debian packages the lab and the tests need (as root). Idempotent and quiet: does
# nothing when everything is already installed, else one `apt-get update` and one install.
set -euo pipefail
packages=(docker.io docker-registry apache2-utils busybox-static iproute2 openssl python3.11
          amazon-ecr-credential-helper ca-certificates util-linux postgresql redis-server
          chromium chromium-driver)
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
