#!/usr/bin/env bash
# The Kubernetes servers the tests run (kube-apiserver, kube-controller-manager, and for the one real
# node kube-scheduler and kubelet), built offline from
# Debian bookworm's `kubernetes` source package (1.20.2, vendor/ complete) and cached outside the
# checkout, so that a later run starts the cluster in seconds. Prints the directory of the binaries.
#
# Debian ships no Kubernetes server binaries; its source package builds them with Debian's Go and
# no network (GOPROXY=off). About 4 minutes on 2 cores the first time (2.2 GB of disk, 1.4 GB RAM).
# The source list is private to this script (its own sources file and package lists under the
# cache): nothing in /etc/apt changes. Needs root for apt-get (golang-go, etcd-server, dpkg-dev).
set -euo pipefail
version=1.20.2
cache="${AIRFLOW_ECR_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airflow-ecr/k8s}"
bin="$cache/v$version/bin"
targets=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

have_all() {
  for t in "${targets[@]}"; do [ -x "$bin/$t" ] || return 1; done
}

needs=()
for package in golang-go etcd-server dpkg-dev; do
  [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)" = "install ok installed" ] || needs+=("$package")
done
if [ ${#needs[@]} -gt 0 ]; then
  echo "k8s-binaries: installing ${needs[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needs[@]}" >/dev/null
fi
if have_all; then
  echo "$bin"
  exit 0
fi

work="$cache/v$version/build"
rm -rf "$work" && mkdir -p "$work/lists/partial"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb-src [signed-by=$keyring] http://deb.debian.org/debian bookworm main" >"$work/sources.list"
apt_private=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
             -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
started=$(date +%s)
echo "k8s-binaries: fetching Debian's kubernetes source package (private source list)" >&2
apt-get "${apt_private[@]}" update -qq >&2
(cd "$work" && apt-get "${apt_private[@]}" source --download-only -qq kubernetes >&2)
dpkg-source -x "$work"/kubernetes_*.dsc "$work/src" >/dev/null
echo "k8s-binaries: building ${targets[*]} (GOPROXY=off; about 4 minutes on 2 cores)" >&2
whats=$(printf 'cmd/%s ' "${targets[@]}")
(cd "$work/src" && GOPROXY=off CGO_ENABLED=0 KUBE_GIT_VERSION=v$version KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 \
  KUBE_GIT_TREE_STATE=clean make WHAT="$whats" >"$work/build.log" 2>&1) || {
  tail -20 "$work/build.log" >&2
  echo "k8s-binaries: the build failed; its log is $work/build.log" >&2
  exit 1
}
mkdir -p "$bin.tmp"
for t in "${targets[@]}"; do cp "$work/src/_output/local/bin/linux/amd64/$t" "$bin.tmp/"; done
rm -rf "$bin" && mv "$bin.tmp" "$bin"
rm -rf "$work"  # 2 GB of build tree; the binaries are what is kept
echo "k8s-binaries: built in $(($(date +%s) - started)) s into $bin" >&2
echo "$bin"
