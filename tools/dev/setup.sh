#!/usr/bin/env bash
# Installs every Debian package flinc needs (idempotent: only what is missing), then
# configures and builds into build/. Run as root or with sudo available.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"

packages=(
  build-essential pkg-config meson ninja-build clang libclang-rt-14-dev
  zookeeper libzookeeper-st-dev libevent-dev libmsgpack-dev librocksdb-dev rocksdb-tools
  libyaml-dev python3-pytest python3-kazoo python3-yaml python3-msgpack python3-requests iproute2 procps
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
else
  echo "setup: all ${#packages[@]} Debian packages present"
fi

if [ ! -f build/build.ninja ]; then
  meson setup build
fi
ninja -C build
