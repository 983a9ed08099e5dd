#!/bin/sh
# run.sh - fedc-sim against a plain PyTorch FedAvg loop, side by side.
#
# `make bench` runs it with FEDC_BUILD set (the binary is
# $FEDC_BUILD/bin/fedc-sim; default build/). See bench/README.md.
#
# Two settings, both fedc-sim's default job (Fashion-MNIST, 100 iid clients,
# 10 per round, 1 local epoch, batch 32, lr 0.05, test-set evaluation every
# round):
#   softmax   softmax regression, 100 rounds
#   mlp       784-200-200-10 ReLU MLP, 20 rounds (enough for timing; its
#             accuracy is the one after 20 rounds, not a converged figure)
# Each measurement runs FEDC_BENCH_REPS times (5), fedc and torch interleaved
# so that machine noise hits both; the table shows medians, and the load
# average (uptime) is printed with each run and each figure.
#
# Knobs (environment): FEDC_BENCH_REPS (5), FEDC_BENCH_THREADS (2),
# FEDC_BENCH_SOFTMAX_ROUNDS (100), FEDC_BENCH_MLP_ROUNDS (20),
# FEDC_BENCH_PYTHON (/usr/bin/python3, the interpreter that runs torch),
# FEDC_BENCH_SPLIT (0; 1: also time fedc without the per-round evaluation),
# FEDC_CPU (force a kernel variant: avx2, ...), FEDC_BENCH_OPENBLAS_CORE
# (the OpenBLAS kernel both sides use: Haswell, AVX2, when FEDC_CPU=avx2, so
# that an AVX-512 machine stands for an AVX2-only one; else OpenBLAS's own
# choice; "auto" forces its own choice).
# The header names the kernel variant, the OpenBLAS core and the threads;
# each fedc run reports where its rounds went (training, aggregation,
# evaluation) and its CPU time; bench/kernels.c prints the kernels' GFLOP/s
# against the FMA peak.
set -eu

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
BUILD=${FEDC_BUILD:-$BENCH_DIR/../build}
SIM=$BUILD/bin/fedc-sim
REPS=${FEDC_BENCH_REPS:-5}
THREADS=${FEDC_BENCH_THREADS:-2}
SOFTMAX_ROUNDS=${FEDC_BENCH_SOFTMAX_ROUNDS:-100}
MLP_ROUNDS=${FEDC_BENCH_MLP_ROUNDS:-20}
# Debian's python3-torch lives under /usr/bin/python3, not PATH's python3
TORCH_PY=${FEDC_BENCH_PYTHON:-/usr/bin/python3}
LR=0.05
HIDDEN=200,200
MLP_LAYERS=784,200,200,10
TEST_SAMPLES=10000 # Fashion-MNIST's test set, evaluated every round
# PyTorch's OpenMP threads spin while they wait by default; on a small or
# busy machine that starves the other thread (and OpenBLAS's), and torch with
# 2 threads ran 3-5x slower than with PASSIVE here. The baseline gets the
# better setting; an OMP_WAIT_POLICY already in the environment wins.
TORCH_OMP_WAIT=${OMP_WAIT_POLICY:-PASSIVE}
# FEDC_BENCH_SPLIT=1: each fedc run is followed by one without the per-round
# evaluation (fedc-sim's phase_secs says where a round goes without it)
SPLIT=${FEDC_BENCH_SPLIT:-0}
# An AVX2-only machine on an AVX-512 one: fedc's kernels forced to AVX2
# (FEDC_CPU) and OpenBLAS's to Haswell, for fedc and torch alike (torch's
# own kernels already report AVX2; oneDNN capped too).
OB_CORE=${FEDC_BENCH_OPENBLAS_CORE:-}
if [ -z "$OB_CORE" ] && [ "${FEDC_CPU:-}" = avx2 ]; then OB_CORE=Haswell; fi
if [ "$OB_CORE" = auto ]; then OB_CORE=""; fi
if [ -n "$OB_CORE" ]; then
  export OPENBLAS_CORETYPE="$OB_CORE"
  [ "${FEDC_CPU:-}" = avx2 ] && export DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
fi
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'; }

if [ ! -x "$SIM" ]; then
  echo "bench: $SIM not found; build it first (make all)" >&2
  exit 1
fi
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fedc-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

HAVE_TORCH=0
TORCH_VER=""
if [ -x "$TORCH_PY" ] &&
   TORCH_VER=$("$TORCH_PY" -c 'import torch; print(torch.__version__)' 2>/dev/null); then
  HAVE_TORCH=1
fi

# The job, spelled out in full on both sides so a changed default cannot
# silently make the comparison unfair.
COMMON="--set sim.clients=100 --set sim.partition=iid --set job.clients_per_round=10
 --set train.epochs=1 --set train.batch_size=32 --set train.lr=$LR
 --set train.momentum=0 --set sim.eval_every=1 --threads $THREADS --json"

# run_one SETTING IMPL REP: one run, its stdout to $TMP/SETTING.IMPL.REP.json
run_one() {
  out=$TMP/$1.$2.$3.json
  case $1 in
  softmax) rounds=$SOFTMAX_ROUNDS ;;
  mlp) rounds=$MLP_ROUNDS ;;
  esac
  if [ "$2" = fedc ] || [ "$2" = noeval ]; then
    if [ "$1" = mlp ]; then model="--set model.type=mlp --set model.hidden=$HIDDEN"
    else model="--set model.type=softmax"; fi
    # noeval: the same job evaluating only after its last round
    extra=""
    [ "$2" = noeval ] && extra="--set sim.eval_every=1000000"
    # shellcheck disable=SC2086
    "$SIM" $COMMON $model --set job.rounds="$rounds" $extra >"$out" 2>"$out.err" || {
      echo "bench: fedc-sim ($1, run $3) failed:" >&2
      cat "$out.err" >&2
      return 0
    }
  else
    OMP_WAIT_POLICY=$TORCH_OMP_WAIT "$TORCH_PY" "$BENCH_DIR/pytorch_fedavg.py" \
      --model "$1" --hidden "$HIDDEN" --rounds "$rounds" --lr "$LR" --threads "$THREADS" --json \
      >"$out" 2>"$out.err" || {
      echo "bench: pytorch_fedavg.py ($1, run $3) failed:" >&2
      cat "$out.err" >&2
      return 0
    }
  fi
  # progress on stderr: the run's s/round and the load average after it
  sed -n 's/.*"final":true.*"sec_per_round":\([0-9.]*\).*/\1 s\/round/p' "$out" |
    tr '\n' ' ' >&2
  printf '(load %s) ' "$(load)" >&2
}

echo "fedc benchmark: fedc-sim vs plain PyTorch FedAvg"
echo "  fedc-sim:  $SIM ($("$SIM" --version 2>/dev/null | head -n 1 || echo unknown version))"
# the CPU kernel variant the runs use: the best one the CPU reports, or the
# one FEDC_CPU forces (docs/architecture.md, Compute)
VARIANT=$("$SIM" --version 2>/dev/null | sed -n 's/^cpu kernels: //p')
echo "  kernels:   ${VARIANT:-unknown} (FEDC_CPU=${FEDC_CPU:-unset})"
# the OpenBLAS kernel set that runs (both sides load the same libopenblas)
OB_RAN=$("$PY" -c 'import ctypes, ctypes.util
n = ctypes.util.find_library("openblas") or "libopenblas.so.0"
f = ctypes.CDLL(n).openblas_get_corename
f.restype = ctypes.c_char_p
print(f().decode())' 2>/dev/null || echo unknown)
echo "  openblas:  core $OB_RAN (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}); fedc-sim calls it"
echo "             single-threaded from each worker, for the products its kernels leave"
if [ "$HAVE_TORCH" = 1 ]; then
  echo "  pytorch:   $TORCH_PY, torch $TORCH_VER ($BENCH_DIR/pytorch_fedavg.py),"
  echo "             OMP_WAIT_POLICY=$TORCH_OMP_WAIT"
else
  echo "  pytorch:   not available: $TORCH_PY cannot import torch, so the comparison"
  echo "             is skipped and only fedc's figures are shown."
  echo "             FEDC_DEPS_EXTRA=python3-torch scripts/install-deps.sh installs it."
fi
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "  machine:   ${cpu:-unknown CPU}, $(nproc 2>/dev/null || echo '?') cores; load average $(load) at the start"
echo "  threads:   fedc-sim --threads $THREADS (a pool of $THREADS workers training clients and"
echo "             evaluating test chunks; OpenBLAS 1 thread each); torch set_num_threads($THREADS)"
echo "             (its intra-op OpenMP threads), one Python thread driving it"
echo "  job:       Fashion-MNIST, 100 iid clients, 10 per round, 1 epoch, batch 32,"
echo "             lr $LR, test-set evaluation every round"
echo "  settings:  softmax regression $SOFTMAX_ROUNDS rounds; MLP $MLP_LAYERS" \
  "$MLP_ROUNDS rounds (timing run: accuracy after $MLP_ROUNDS rounds)"
if [ "$HAVE_TORCH" = 1 ]; then
  echo "  runs:      $REPS of each, fedc and torch interleaved; medians shown"
else
  echo "  runs:      $REPS of each; medians shown"
fi
echo

for setting in softmax mlp; do
  rep=1
  while [ "$rep" -le "$REPS" ]; do
    printf 'bench: %-7s run %d/%d: fedc ' "$setting" "$rep" "$REPS" >&2
    run_one "$setting" fedc "$rep"
    if [ "$HAVE_TORCH" = 1 ]; then
      printf ' torch ' >&2
      run_one "$setting" torch "$rep"
    fi
    if [ "$SPLIT" = 1 ]; then
      printf ' fedc without evaluation ' >&2
      run_one "$setting" noeval "$rep"
    fi
    echo >&2
    rep=$((rep + 1))
  done
done
echo >&2

torch_flag=""
[ "$HAVE_TORCH" = 1 ] && torch_flag=--torch
"$PY" "$BENCH_DIR/summarize.py" --dir "$TMP" \
  --settings "softmax:$SOFTMAX_ROUNDS,mlp:$MLP_ROUNDS" $torch_flag \
  --mlp-layers "$MLP_LAYERS" --test-samples "$TEST_SAMPLES" \
  --threads "$THREADS" --reps "$REPS"
if [ "$HAVE_TORCH" != 1 ]; then
  echo
  echo "PyTorch comparison skipped: $TORCH_PY cannot import torch" \
    "(FEDC_DEPS_EXTRA=python3-torch scripts/install-deps.sh installs it)."
fi

# PyTorch as a user runs it, with OpenMP's default wait policy (its threads
# spin, which on a 2-core machine costs it 3-5x): the MLP setting, 5 rounds,
# twice; the figure a user sees (0.75-1.0 s per MLP round) is this one.
if [ "$HAVE_TORCH" = 1 ] && [ "${FEDC_BENCH_TORCH_DEFAULT:-1}" = 1 ]; then
  echo
  echo "PyTorch with its default OpenMP settings (OMP_WAIT_POLICY unset), MLP, 5 rounds:"
  for i in 1 2; do
    env -u OMP_WAIT_POLICY "$TORCH_PY" "$BENCH_DIR/pytorch_fedavg.py" --model mlp --rounds 5 \
      --threads "$THREADS" --lr 0.05 --json 2>/dev/null | tail -1 |
      "$PY" -c 'import json,sys; f=json.loads(sys.stdin.read()); print("  torch (default OpenMP) %.3f s/round" % f["sec_per_round"])'
  done
fi
# Where a round goes: fedc-sim's own timers (phase_secs: the clients'
# training, the round's close with FedAvg's fold, the test-set evaluation;
# the rest is selection, bookkeeping and output) and its CPU time, medians.
echo
echo "where a fedc round goes ($VARIANT, OpenBLAS $OB_RAN, $THREADS threads; medians of $REPS runs;"
echo "load average $(load) now):"
"$PY" - "$TMP" "$THREADS" <<'PYEOF'
import glob, json, os, statistics, sys
tmp, threads = sys.argv[1], int(sys.argv[2])
for setting in ("softmax", "mlp"):
    rows = []
    for path in glob.glob(os.path.join(tmp, "%s.fedc.*.json" % setting)):
        for line in open(path):
            if '"final":true' in line:
                f = json.loads(line)
                ph, n = f.get("phase_secs"), f.get("rounds") or 1
                if ph:
                    spr = f["sec_per_round"]
                    t, a, e = ph["train"] / n, ph["aggregate"] / n, ph["evaluate"] / n
                    rows.append((spr, t, a, e, spr - t - a - e, f.get("cpu_sec_per_round", 0.0)))
    if not rows:
        continue
    # each column's median (so the parts need not add up to the total exactly)
    med = [statistics.median(r[i] for r in rows) for i in range(6)]
    print("  %-8s %7.2f ms/round: training %.2f, aggregation %.2f, evaluation %.2f,"
          " other %.2f;\n           CPU %.2f ms/round (%.2f of %d cores busy)"
          % (setting, 1e3 * med[0], 1e3 * med[1], 1e3 * med[2], 1e3 * med[3], 1e3 * med[4],
             1e3 * med[5], med[5] / med[0] if med[0] else 0, threads))
PYEOF
# Each fedc run followed by the same job evaluating
# only after its last round; the difference of each pair is the evaluation.
if [ "$SPLIT" = 1 ]; then
  echo
  echo "where a fedc round goes ($VARIANT; medians over the $REPS pairs of runs):"
  "$PY" - "$TMP" <<'PYEOF'
import json, os, statistics, sys
tmp = sys.argv[1]
def per_round(path):
    try:
        for line in open(path):
            if '"final":true' in line:
                return json.loads(line)["sec_per_round"]
    except OSError:
        pass
    return None
for setting in ("softmax", "mlp"):
    pairs = []
    for rep in range(1, 100):
        a = per_round(os.path.join(tmp, "%s.fedc.%d.json" % (setting, rep)))
        b = per_round(os.path.join(tmp, "%s.noeval.%d.json" % (setting, rep)))
        if a is not None and b is not None:
            pairs.append((a, b))
    if not pairs:
        continue
    full = statistics.median(p[0] for p in pairs)
    noev = statistics.median(p[1] for p in pairs)
    ev = statistics.median(p[0] - p[1] for p in pairs)
    print("  %-8s %7.2f ms/round; without the per-round evaluation %7.2f ms (local training,"
          " exchange, FedAvg fold);\n           the evaluation of the 10,000 test images"
          " %.2f ms (%.0f%% of a round)" % (setting, 1e3 * full, 1e3 * noev, 1e3 * ev,
                                          100 * ev / full))
PYEOF
fi

# The kernels on their own: the skinny products of every variant this CPU
# runs, in GFLOP/s against the FMA peak (bench/kernels.c).
if cc -O2 -std=c11 -D_GNU_SOURCE "$BENCH_DIR/kernels.c" -o "$TMP/kernels" \
     -I"$BENCH_DIR/../include" -I"$BENCH_DIR/../shared" "$BUILD/lib/libfedc.a" -lm 2>/dev/null; then
  echo
  "$TMP/kernels"
fi
if cc -O2 "$BENCH_DIR/gemm_peak.c" -o "$TMP/gemm_peak" \
     -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas 2>/dev/null; then
  echo
  echo "the machine's ceiling, OpenBLAS SGEMM 2048^3: $(OPENBLAS_NUM_THREADS=1 "$TMP/gemm_peak") GFLOP/s" \
       "on 1 thread, $(OPENBLAS_NUM_THREADS=$THREADS "$TMP/gemm_peak") GFLOP/s on $THREADS"
fi

# The coordinator: one round of 50 real clients over mutual TLS with a
# ~1M-parameter model (set FEDC_BENCH_COORD=0 to skip).
if [ "${FEDC_BENCH_COORD:-1}" = 1 ] && [ -x "$BUILD/bin/fedc-coordinator" ]; then
  echo
  echo "coordinator round: 50 clients, MLP 784-1000-200-10 (987,210 parameters), mutual TLS on loopback"
  FEDC_BUILD="$BUILD" python3 "$BENCH_DIR/coordinator_round.py" 50 5
fi
# The MPI simulator (bench/mpi.sh), when it is built.
if [ "${FEDC_BENCH_MPI:-1}" = 1 ] && [ -x "$BUILD/bin/fedc-sim-mpi" ] && [ -f "$BENCH_DIR/mpi.sh" ]; then
  echo
  FEDC_BUILD="$BUILD" sh "$BENCH_DIR/mpi.sh"
fi
# Strategies, robustness and privacy (set FEDC_BENCH_STRATEGIES=0 to skip).
if [ "${FEDC_BENCH_STRATEGIES:-1}" = 1 ]; then
  echo
  FEDC_BUILD="$BUILD" sh "$BENCH_DIR/strategies.sh"
fi
