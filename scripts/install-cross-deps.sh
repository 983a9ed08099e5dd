#!/bin/sh
# install-cross-deps.sh - what building and testing fedc-client for arm64 needs.
#
# Debian 12, as root (or with sudo): adds the arm64 architecture to dpkg
# (multiarch), then installs the cross compiler (crossbuild-essential-arm64),
# qemu-user to run the result, and the arm64 builds of the client's own
# libraries only: libcurl, mbed TLS (mbedcrypto), OpenBLAS, cJSON, inih and
# zlib. The coordinator's libraries (libuv, SQLite, http-parser), MPI and
# CUDA are never asked for. With everything present it only checks and exits
# 0 at once, so `make client-arm64` calls it each time. Exit 1 when something
# is missing and cannot be installed (not root, no sudo, or apt failing).
set -eu

ARCH=arm64
TOOLS="crossbuild-essential-arm64 qemu-user"
LIBS="libcurl4-openssl-dev libmbedtls-dev libopenblas-dev libcjson-dev \
libinih-dev zlib1g-dev"

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=""
for p in $TOOLS; do installed "$p" || missing="$missing $p"; done
for p in $LIBS; do installed "$p:$ARCH" || missing="$missing $p:$ARCH"; done
[ -z "$missing" ] && exit 0

echo "fedc: installing missing packages for arm64:$missing" >&2
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; else
    echo "fedc: run as root, or: dpkg --add-architecture $ARCH && apt-get update && apt-get install$missing" >&2
    exit 1
  fi
else
  SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx "$ARCH"; then
  $SUDO dpkg --add-architecture "$ARCH"
fi
# wait for another apt run rather than fail on its lock
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
echo "fedc: arm64 packages installed" >&2
