#!/bin/sh
# install-deps.sh - install the Debian packages fedc needs, if any is missing.
#
# Run as root on Debian 12 (apt-get). With every package present it only
# checks and exits 0 at once, so `make test` and `make demo` call it each time.
# FEDC_DEPS_EXTRA adds packages (bench/run.sh asks for python3-torch).
set -eu

PACKAGES="build-essential pkg-config python3 ca-certificates openssl \
libopenblas-dev libinih-dev libcjson-dev libmbedtls-dev zlib1g-dev \
libsqlite3-dev libuv1-dev libcurl4-openssl-dev libhttp-parser-dev \
libcmocka-dev dataset-fashion-mnist libopenmpi-dev openmpi-bin \
python3-numpy python3-sklearn chromium \
${FEDC_DEPS_EXTRA:-}"

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "fedc: installing missing packages:$missing" >&2
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "fedc: run as root, or install them with: apt-get install$missing" >&2
    exit 1
  fi
else
  SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "fedc: packages installed" >&2
