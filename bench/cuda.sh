#!/bin/sh
# cuda.sh - the CUDA backend's figures (docs/cuda.md, "Measured").
#
# `make bench-cuda` runs it with FEDC_BUILD set (default build/). Without a
# CUDA build or without a device it prints "no CUDA device: skipped" and
# exits 0. With one it prints:
#   1. fedc-bench-cuda all: softmax regression on Fashion-MNIST (epochs/s and
#      test accuracy, CUDA and CPU); 150,528 x 1,000 softmax regression on
#      synthetic data on the device (images/s, target >= 20,000); FedAvg of
#      100 updates of 10 M parameters (GB/s against the GPU's peak memory
#      bandwidth), median and trimmed mean, the CPU's FedAvg beside them;
#   2. fedc-sim, the 784-200-200-10 MLP job, seconds per round with
#      train.device = cuda and = cpu, and the accuracy each reached.
#
# Knobs (environment):
#   FEDC_BENCH_EPOCHS (5), FEDC_BENCH_BATCH (32)           softmax
#   FEDC_BENCH_WIDE_ROWS (8192), FEDC_BENCH_WIDE_BATCH (256),
#   FEDC_BENCH_WIDE_EPOCHS (3)                             wide softmax
#   FEDC_BENCH_AGG_UPDATES (100), FEDC_BENCH_AGG_PARAMS (10000000)
#   FEDC_BENCH_MLP_ROUNDS (20), FEDC_BENCH_THREADS (2)     fedc-sim
#   FEDC_BENCH_FMNIST (/usr/share/datasets/fashion-mnist)
set -eu

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
BUILD=${FEDC_BUILD:-$BENCH_DIR/../build}
BIN=$BUILD/bin/fedc-bench-cuda
SIM=$BUILD/bin/fedc-sim
ROUNDS=${FEDC_BENCH_MLP_ROUNDS:-20}
THREADS=${FEDC_BENCH_THREADS:-2}

if [ ! -x "$BIN" ]; then
  echo "no CUDA device: skipped ($BIN was not built: this build has no CUDA" \
    "backend; nvcc was not found, or CUDA=0)"
  exit 0
fi
probe_rc=0
probe=$("$BIN" probe) || probe_rc=$?
if [ "$probe_rc" -eq 77 ]; then
  echo "$probe"
  exit 0
fi
if [ "$probe_rc" -ne 0 ]; then
  echo "bench: $BIN probe failed ($probe_rc): $probe" >&2
  exit 1
fi

echo "fedc CUDA benchmark"
echo "  $probe"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "  host: ${cpu:-unknown CPU}, $(nproc 2>/dev/null || echo '?') cores"
echo
"$BIN" all | grep -v '^device: '
echo

# fedc-sim: the MLP job of bench/run.sh, on each device
if [ ! -x "$SIM" ]; then
  echo "fedc-sim MLP: $SIM not built: skipped"
  exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fedc-cuda-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
echo "fedc-sim, 784-200-200-10 MLP, 100 iid clients, 10 per round, 1 epoch, batch 32,"
echo "lr 0.05, $ROUNDS rounds, $THREADS worker threads, test-set evaluation every round:"
for dev in cuda cpu; do
  if ! "$SIM" --set sim.clients=100 --set sim.partition=iid --set job.clients_per_round=10 \
    --set train.epochs=1 --set train.batch_size=32 --set train.lr=0.05 \
    --set train.momentum=0 --set sim.eval_every=1 --threads "$THREADS" \
    --set model.type=mlp --set model.hidden=200,200 --set job.rounds="$ROUNDS" \
    --set train.device="$dev" --json >"$TMP/$dev.json" 2>"$TMP/$dev.err"; then
    echo "  $dev: fedc-sim failed:"
    sed 's/^/    /' "$TMP/$dev.err"
    continue
  fi
  sed -n 's/.*"final":true.*/&/p' "$TMP/$dev.json" | tail -n 1 >"$TMP/$dev.final"
  spr=$(sed -n 's/.*"sec_per_round":\([0-9.eE+-]*\).*/\1/p' "$TMP/$dev.final")
  acc=$(sed -n 's/.*"test_acc":\([0-9.eE+-]*\).*/\1/p' "$TMP/$dev.final")
  printf '  %-4s  %s s/round   test accuracy %s\n' "$dev" "${spr:-?}" "${acc:-?}"
done
