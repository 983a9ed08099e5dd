#!/bin/sh
# fold.sh - the coordinator's fold throughput in GB/s of float32 update per
# core, against one core's memory bandwidth on this machine
# (bench/fold.c, fedc-bench-fold; docs/compression.md quotes the figures).
# Two model sizes: the Fashion-MNIST MLP (199,210 weights, 10 updates a
# round: the sums stay in cache) and 16,777,216 weights (64 MB float32,
# 8 updates: the 128-bit sums, 256 MB, do not). Target (issue 17): >= 1
# GB/s per core of float32 input.
#
#   make bench-fold      (builds fedc-bench-fold, then runs this)
set -eu
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${FEDC_BUILD:-$ROOT/build}
BIN=$BUILD/bin/fedc-bench-fold
[ -x "$BIN" ] || { echo "fold: $BIN not found; make bench-fold" >&2; exit 1; }
grep -m1 "model name" /proc/cpuinfo | sed 's/^.*: /cpu: /'
nice "$BIN" 199210 10
nice "$BIN" 16777216 8
