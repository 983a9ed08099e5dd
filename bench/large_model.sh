#!/bin/sh
# large_model.sh - a 1 GiB tensor job (one F32 tensor) with 4 clients on
# loopback over mutual TLS (bench/large_model.py): each round's time and
# the peak RSS (VmHWM) of the coordinator and of one client, against the
# model's size. Updates go as chunked uploads (docs/protocol.md).
# FEDC_LARGE_MB (1024), FEDC_LARGE_CLIENTS (4), FEDC_LARGE_ROUNDS (2) change
# the job; the default needs about 20 GiB of memory and 10 GiB of disk
# (each site holds the model, its update and its trainer's copies).
BUILD=${FEDC_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
for b in bin/fedc-coordinator bin/fedc-client; do
  if [ ! -x "$BUILD/$b" ]; then
    echo "large_model: $BUILD/$b is not built (make all)"
    exit 1
  fi
done
FEDC_BUILD=$BUILD exec /usr/bin/python3 bench/large_model.py
