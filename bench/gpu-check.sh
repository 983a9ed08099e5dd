#!/bin/sh
# gpu-check.sh - everything fedc's GPU code needs a GPU for, in one run that
# writes one report (docs/cuda.md, "Checking on a GPU"). On a machine with
# an NVIDIA GPU, in the repository root:
#
#   sh bench/gpu-check.sh          # report: $OUT/gpu-check-report.txt when
#                                  # $OUT is set, else ./gpu-check-report.txt
#
# Steps, each under its own timeout, the whole under FEDC_GPU_BUDGET_S
# (default 470 s, so that a run and a rerun fit a 15-minute lease):
#   env         the GPU (nvidia-smi), nvcc, the host CPU
#   build       make CUDA=1 CI=1 all + the CUDA unit tests, in $FEDC_GPU_BUILD
#               (default build/gpu; FEDC_GPU_CHECK_BUILD=0 uses that folder as
#               it is, for a run on a machine that must not build)
#   unit        test_agg_cuda, test_agg_device (GPU op against the CPU through
#               the GPU strategy), test_agg_device_emul, test_backend_ops; on a
#               GPU a skipped case counts as a failure
#   integration test_cuda_module.sh, test_agg_device.sh (fedc-sim with device =
#               auto/cuda), test_agg_device_coord.sh (the coordinator)
#   sanitizer   compute-sanitizer memcheck on test_agg_cuda and test_agg_device
#               (where compute-sanitizer is installed)
#   bench       fedc-bench-cuda: softmax regression on the whole Fashion-MNIST
#               training set (epochs/s, test accuracy); logistic (softmax)
#               regression, 150,528 features x 1,000 classes, synthetic data
#               made on the device (images/s); FedAvg of 100 updates of 10 M
#               parameters (GB/s against the GPU's peak memory bandwidth and
#               the CPU's fold)
#   sim         fedc-sim, 784-200-200-10 MLP, seconds per round for
#               train.device x strategy.device in {cpu, cuda}
# Without a GPU every step that needs one says "SKIPPED (no GPU: ...)"; the
# others run. Exit status: 1 when a step failed, 77 when none failed but a
# step was skipped for lack of a GPU, 0 when everything ran and passed.
#
# Fashion-MNIST is looked for in FEDC_BENCH_FMNIST, bench/data/fashion-mnist
# (copy the four .gz files there to carry them to a machine that has none)
# and /usr/share/datasets/fashion-mnist; without it the steps that need it
# say SKIPPED. Sizes: FEDC_GPU_SIM_ROUNDS (10), FEDC_BENCH_EPOCHS (5),
# FEDC_BENCH_AGG_UPDATES (100), FEDC_BENCH_AGG_PARAMS (10000000) and the
# other knobs of bench/cuda.sh.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
B=${FEDC_GPU_BUILD:-build/gpu}
BUDGET=${FEDC_GPU_BUDGET_S:-470}
ROUNDS=${FEDC_GPU_SIM_ROUNDS:-10}
JOBS=$(nproc 2>/dev/null || echo 2)
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  DEST=$OUT
else
  DEST=${FEDC_GPU_REPORT_DIR:-$ROOT}
fi
REPORT=$DEST/gpu-check-report.txt
LOGS=$DEST/gpu-check-logs
mkdir -p "$LOGS" || exit 1
: >"$REPORT"
START=$(date +%s)
FAILED=""
GPU_SKIPPED=""
SUMMARY=$LOGS/summary.txt
: >"$SUMMARY"

say() { printf '%s\n' "$*" | tee -a "$REPORT"; }
elapsed() { echo $(($(date +%s) - START)); }

# record NAME STATUS DETAIL: one line of the closing table
record() {
  printf '%-26s %-8s %s\n' "$1" "$2" "$3" >>"$SUMMARY"
  case $2 in
  FAILED | TIMEOUT) FAILED="$FAILED $1" ;;
  esac
}

# skip_gpu NAME: the step needs a GPU and there is none
skip_gpu() {
  say ""
  say "== $1: SKIPPED (no GPU: $NO_GPU_WHY)"
  record "$1" SKIPPED "no GPU: $NO_GPU_WHY"
  GPU_SKIPPED="$GPU_SKIPPED $1"
}

# skip NAME WHY: the step cannot run here for another reason
skip() {
  say ""
  say "== $1: SKIPPED ($2)"
  record "$1" SKIPPED "$2"
}

# step NAME LIMIT COMMAND: run COMMAND (a shell string) under
# min(LIMIT, time left), its output in $LOGS/NAME.log and the report
step() {
  name=$1 limit=$2 cmd=$3
  left=$((BUDGET - $(elapsed) - 5))
  [ "$limit" -gt "$left" ] && limit=$left
  say ""
  if [ "$limit" -lt 10 ]; then
    say "== $name: SKIPPED (out of time: $(elapsed) s of $BUDGET used)"
    record "$name" SKIPPED "out of time"
    return 1
  fi
  say "== $name (limit ${limit} s): $cmd"
  t0=$(date +%s)
  timeout -k 5 "$limit" sh -c "$cmd" >"$LOGS/$name.log" 2>&1
  rc=$?
  dt=$(($(date +%s) - t0))
  tail -n "${TAIL:-40}" "$LOGS/$name.log" | sed 's/^/  | /' | tee -a "$REPORT"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    say "-- $name: TIMEOUT after ${dt} s"
    record "$name" TIMEOUT "${dt} s (limit ${limit} s)"
  elif [ "$rc" -ne 0 ]; then
    say "-- $name: FAILED (exit $rc) in ${dt} s"
    record "$name" FAILED "exit $rc, ${dt} s"
  else
    say "-- $name: passed in ${dt} s"
    record "$name" PASSED "${dt} s"
  fi
  return "$rc"
}

# ---- env ----------------------------------------------------------------------
say "fedc gpu-check, $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n)"
rev=$(git rev-parse --short HEAD 2>/dev/null || echo "no git")
say "tree: $ROOT ($rev), build folder: $B, budget ${BUDGET} s"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
say "host: ${cpu:-unknown CPU}, $JOBS cores"
NVCC=$(command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
if [ -n "$NVCC" ]; then
  say "nvcc: $NVCC ($("$NVCC" --version | sed -n 's/.*release \([^,]*\),.*/\1/p'))"
else
  say "nvcc: not found"
fi
GPU=0
NO_GPU_WHY="nvidia-smi is not installed and /dev/nvidia0 does not exist"
if command -v nvidia-smi >/dev/null 2>&1; then
  if gpus=$(nvidia-smi -L 2>&1) && printf '%s' "$gpus" | grep -q '^GPU '; then
    GPU=1
    say "gpus:"
    printf '%s\n' "$gpus" | sed 's/^/  /' | tee -a "$REPORT"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory \
      --format=csv,noheader 2>/dev/null | sed 's/^/  /' | tee -a "$REPORT"
  else
    NO_GPU_WHY="nvidia-smi -L: $(printf '%s' "$gpus" | head -n 1)"
  fi
elif [ -e /dev/nvidia0 ]; then
  GPU=1
  say "gpus: /dev/nvidia0 (no nvidia-smi)"
fi
[ "$GPU" = 1 ] || say "gpus: none ($NO_GPU_WHY)"
FMNIST=""
for d in ${FEDC_BENCH_FMNIST:-} "$ROOT/bench/data/fashion-mnist" /usr/share/datasets/fashion-mnist; do
  if [ -f "$d/train-images-idx3-ubyte.gz" ] && [ -f "$d/t10k-labels-idx1-ubyte.gz" ]; then
    FMNIST=$d
    break
  fi
done
say "fashion-mnist: ${FMNIST:-not found}"
# the integration tests read it where fedc's defaults say; a copy carried
# elsewhere is linked there on a machine that has none
STD=/usr/share/datasets/fashion-mnist
if [ -n "$FMNIST" ] && [ "$FMNIST" != "$STD" ] && [ ! -e "$STD" ] &&
  mkdir -p /usr/share/datasets 2>/dev/null && ln -s "$FMNIST" "$STD" 2>/dev/null; then
  say "fashion-mnist: linked $STD -> $FMNIST for the integration tests"
fi
record env PASSED "gpu=$GPU nvcc=${NVCC:+yes}"

# ---- build ----------------------------------------------------------------------
UNIT="test_agg_cuda test_agg_device test_agg_device_emul test_backend_ops"
bins=""
for t in $UNIT; do bins="$bins $B/tests/$t"; done
if [ "${FEDC_GPU_CHECK_BUILD:-1}" = 0 ]; then
  skip build "FEDC_GPU_CHECK_BUILD=0: using $B as it is"
elif [ -z "$NVCC" ]; then
  say ""
  say "== build: FAILED (nvcc not found: install the CUDA toolkit or put nvcc on PATH)"
  record build FAILED "no nvcc"
else
  step build 200 "make BUILD=$B CUDA=1 CI=1 -j$JOBS all$bins"
fi
MODULE=$B/lib/fedc/libfedc-cuda.so
[ -f "$MODULE" ] || say "note: $MODULE is missing: the GPU code was not built"

# ---- unit tests ---------------------------------------------------------------
# cmocka's tally of one binary: "OK n SKIPPED n FAILED n"
tally() {
  printf 'OK %s SKIPPED %s FAILED %s' "$(grep -c '^\[       OK \]' "$1")" \
    "$(grep '^\[  SKIPPED \] test_' "$1" | sort -u | wc -l)" \
    "$(grep '^\[  FAILED  \] test_' "$1" | sort -u | wc -l)"
}
for t in $UNIT; do
  if [ ! -x "$B/tests/$t" ]; then
    skip "unit:$t" "$B/tests/$t is not built"
    continue
  fi
  TAIL=12 step "unit:$t" 60 "$B/tests/$t"
  counts=$(tally "$LOGS/unit:$t.log")
  say "   $t: $counts"
  skipped=$(printf '%s' "$counts" | sed 's/.*SKIPPED \([0-9]*\).*/\1/')
  case $t in
  test_agg_cuda | test_agg_device)
    if [ "$GPU" = 1 ] && [ "$skipped" -gt 0 ]; then
      say "-- unit:$t: FAILED: $skipped case(s) skipped on a machine with a GPU"
      record "unit:$t" FAILED "$skipped GPU case(s) skipped with a GPU present"
    elif [ "$GPU" = 0 ] && [ "$skipped" -gt 0 ]; then
      say "   (the $skipped skipped case(s) need a GPU)"
      GPU_SKIPPED="$GPU_SKIPPED unit:$t"
    fi
    ;;
  esac
done

# ---- integration --------------------------------------------------------------
for t in test_cuda_module test_agg_device test_agg_device_coord; do
  if [ ! -f "$STD/train-images-idx3-ubyte.gz" ] && [ "$t" != test_cuda_module ]; then
    skip "it:$t" "no Fashion-MNIST at $STD, which it reads"
    continue
  fi
  TAIL=15 step "it:$t" 90 "FEDC_BUILD=$B sh tests/integration/$t.sh"
done

# ---- compute-sanitizer ----------------------------------------------------------
SAN=$(command -v compute-sanitizer 2>/dev/null || true)
for s in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [ -z "$SAN" ] && [ -x "$s" ] && SAN=$s
done
if [ "$GPU" = 0 ]; then
  skip_gpu sanitizer
elif [ -z "$SAN" ]; then
  skip sanitizer "compute-sanitizer is not installed"
else
  for t in test_agg_cuda test_agg_device; do
    TAIL=15 step "memcheck:$t" 90 "$SAN --tool memcheck --leak-check full --error-exitcode 9 $B/tests/$t"
  done
fi

# ---- benchmarks -------------------------------------------------------------------
BENCH=$B/bin/fedc-bench-cuda
if [ "$GPU" = 0 ]; then
  skip_gpu bench
elif [ ! -x "$BENCH" ]; then
  skip bench "$BENCH is not built"
else
  what="wide agg"
  if [ -n "$FMNIST" ]; then
    what="softmax $what"
  else
    say "note: no Fashion-MNIST: the softmax benchmark is left out"
  fi
  for w in $what; do
    TAIL=20 step "bench:$w" 120 "FEDC_BENCH_FMNIST=$FMNIST $BENCH $w"
  done
fi

# ---- fedc-sim: the MLP round time, each device ---------------------------------------
SIM=$B/bin/fedc-sim
if [ "$GPU" = 0 ]; then
  skip_gpu sim
elif [ -z "$FMNIST" ]; then
  skip sim "no Fashion-MNIST"
elif [ ! -x "$SIM" ]; then
  skip sim "$SIM is not built"
else
  cat >"$LOGS/sim.sh" <<EOF
set -u
for train in cpu cuda; do
  for agg in cpu cuda; do
    "$SIM" --set sim.clients=100 --set sim.partition=iid --set job.clients_per_round=10 \\
      --set train.epochs=1 --set train.batch_size=32 --set train.lr=0.05 --set sim.eval_every=1 \\
      --threads $JOBS --set model.type=mlp --set model.hidden=200,200 --set job.rounds=$ROUNDS \\
      --set data.train=$FMNIST/train-images-idx3-ubyte.gz \\
      --set data.train_labels=$FMNIST/train-labels-idx1-ubyte.gz \\
      --set data.test=$FMNIST/t10k-images-idx3-ubyte.gz \\
      --set data.test_labels=$FMNIST/t10k-labels-idx1-ubyte.gz \\
      --set train.device=\$train --set strategy.device=\$agg --json \\
      >"$LOGS/sim-\$train-\$agg.json" 2>"$LOGS/sim-\$train-\$agg.err" || {
      echo "train.device=\$train strategy.device=\$agg: fedc-sim failed:"; cat "$LOGS/sim-\$train-\$agg.err"; exit 1; }
    final=\$(grep '"final":true' "$LOGS/sim-\$train-\$agg.json" | tail -n 1)
    spr=\$(printf '%s' "\$final" | sed -n 's/.*"sec_per_round":\([0-9.eE+-]*\).*/\1/p')
    acc=\$(printf '%s' "\$final" | sed -n 's/.*"test_acc":\([0-9.eE+-]*\).*/\1/p')
    printf 'train.device=%-4s strategy.device=%-4s %s s/round  test accuracy %s\n' \$train \$agg "\$spr" "\$acc"
  done
done
EOF
  say "fedc-sim: 784-200-200-10 MLP, 100 iid clients, 10 per round, 1 epoch, batch 32, $ROUNDS rounds"
  step sim 120 "sh $LOGS/sim.sh"
fi

# ---- the closing table ----------------------------------------------------------------
say ""
say "== summary ($(elapsed) s of $BUDGET)"
sed 's/^/  /' "$SUMMARY" | tee -a "$REPORT"
if [ -n "$FAILED" ]; then
  say "RESULT: FAILED:$FAILED"
  exit 1
fi
if [ -n "$GPU_SKIPPED" ]; then
  say "RESULT: no failure, but these needed a GPU and were skipped:$GPU_SKIPPED"
  exit 77
fi
say "RESULT: everything ran and passed"
exit 0
