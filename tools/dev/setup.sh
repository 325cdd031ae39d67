#!/usr/bin/env bash
# Installs every Debian package flinc needs (idempotent: only what is missing), then
# configures and builds into build/. Run as root or with sudo available.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"

packages=(
  build-essential pkg-config meson ninja-build clang libclang-rt-14-dev
  zookeeper libzookeeper-st-dev libevent-dev libmsgpack-dev librocksdb-dev rocksdb-tools
  libyaml-dev python3-pytest python3-kazoo python3-yaml python3-msgpack python3-requests iproute2 procps chromium shellcheck
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

# Browser tests (tests/integration/test_web.py): the machine's Node.js (>= 20) and npm,
# playwright-core from the npm registry (tests/web/package-lock.json); the browser is
# Debian's chromium above, never a downloaded one (no `npx playwright install`).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: node and npm (>= 20) are needed for tests/web" >&2
  exit 1
fi
if [ ! -f tests/web/node_modules/.package-lock.json ] ||
   [ tests/web/package-lock.json -nt tests/web/node_modules/.package-lock.json ]; then
  (cd tests/web && npm ci --no-audit --no-fund)
fi

if [ ! -f build/build.ninja ]; then
  meson setup build
fi
ninja -C build
