#!/bin/sh
# mpi.sh - fedc-sim-mpi on this machine: seconds per round and the share of
# it spent in MPI, with 1 and 2 ranks, beside plain fedc-sim.
#
# `make bench-mpi` runs it with FEDC_BUILD set. The job (the MPI scaling job, "Past one
# machine"): Fashion-MNIST split iid over 1,000 clients (60 rows each), 100
# per round, a 784-200-200-10 MLP (199,210 parameters), 1 local epoch of
# batch 32 at lr 0.1, test-set evaluation every round (on rank 0).
# Runs, each FEDC_BENCH_REPS times (3), interleaved; medians shown:
#   fedc-sim     1 process, 2 threads          (the reference)
#   mpi 1x2      1 rank with 2 threads
#   mpi 2x1      2 ranks with 1 thread each    (the same 2 cores)
#   mpi 1x1      1 rank, 1 thread              (the per-core rate)
#   train 1x1    the same, evaluating only after the last round (training
#                alone: with mpi 1x1, the cost of one evaluation)
#   train 2x1    2 ranks, 1 thread each, evaluating only after the last
#                round (training and reduction, without rank 0's evaluation)
# Every run saves its model; all must be byte-identical (cmp).
#
# "comm" is rank 0's time in MPI_Allreduce (the reduction itself), "wait"
# the most any rank spent in the barrier before it (waiting for the slowest
# rank: uneven client counts and rank 0's evaluation), per round and as a
# share of the round time.
# docs/scaling.md reads these figures and extrapolates them to a cluster.
#
# Knobs (environment): FEDC_BENCH_REPS (3), FEDC_BENCH_MPI_ROUNDS (30).
set -eu

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${FEDC_BUILD:-$ROOT/build}
SIM=$BUILD/bin/fedc-sim
MPI=$BUILD/bin/fedc-sim-mpi
REPS=${FEDC_BENCH_REPS:-3}
ROUNDS=${FEDC_BENCH_MPI_ROUNDS:-30}

for b in "$SIM" "$MPI"; do
  if [ ! -x "$b" ]; then
    echo "bench-mpi: $b not found; build it first (make all, with OpenMPI installed)" >&2
    exit 1
  fi
done
command -v mpirun >/dev/null 2>&1 || { echo "bench-mpi: mpirun not found" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# shared memory between the ranks, the runtime on lo; no core binding, so
# that a rank's training threads may use every core it is given
RUN="mpirun --oversubscribe --bind-to none --mca pml ob1 --mca btl self,vader --mca oob_tcp_if_include lo"
JOB="--config $ROOT/configs/sim-fashion-mlp.ini --set sim.clients=1000
 --set job.clients_per_round=100 --set job.rounds=$ROUNDS --set sim.partition=iid
 --set sim.eval_every=1 --json"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fedc-bench-mpi.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "fedc MPI benchmark: $ROUNDS rounds of 100 of 1,000 clients, MLP 784-200-200-10"
echo "  machine: ${cpu:-unknown CPU}, $(nproc) cores; $(mpirun --version | head -n 1)"
echo "  runs:    $REPS of each, interleaved; medians shown"
echo

# one NAME REP RANKS THREADS [MORE]: a run's JSON to $TMP/NAME.REP.json,
# its model to .st; RANKS 0 is plain fedc-sim
one() {
  out=$TMP/$1.$2
  printf ' %s' "$1" >&2
  if [ "$3" = 0 ]; then
    # shellcheck disable=SC2086
    "$SIM" $JOB --threads "$4" --save "$out.st" >"$out.json" 2>"$out.err" || true
  else
    # shellcheck disable=SC2086
    $RUN -np "$3" "$MPI" $JOB --threads "$4" ${5:-} --save "$out.st" >"$out.json" 2>"$out.err" || true
  fi
  tail -n 1 "$out.json" | grep -q '"final":true' || {
    echo "bench-mpi: $1 (run $2) failed:" >&2
    grep -v -- '-----' "$out.err" | head -n 5 >&2
  }
}

rep=1
while [ "$rep" -le "$REPS" ]; do
  printf 'bench-mpi: run %d/%d:' "$rep" "$REPS" >&2
  one sim "$rep" 0 2
  one mpi1x2 "$rep" 1 2
  one mpi2x1 "$rep" 2 1
  one mpi1x1 "$rep" 1 1
  one train1x1 "$rep" 1 1 "--set sim.eval_every=$ROUNDS"
  one train2x1 "$rep" 2 1 "--set sim.eval_every=$ROUNDS"
  echo >&2
  rep=$((rep + 1))
done

# bit-exactness: every saved model against the first
same=1
ref=$TMP/sim.1.st
for f in "$TMP"/*.st; do
  cmp -s "$ref" "$f" || { same=0; echo "bench-mpi: $(basename "$f") differs from fedc-sim's model" >&2; }
done

python3 - "$TMP" "$REPS" "$same" <<'PY'
import json, os, statistics, sys

tmp, reps, same = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
runs = [("sim", "fedc-sim", 1, 2), ("mpi1x2", "mpi", 1, 2),
        ("mpi2x1", "mpi", 2, 1), ("mpi1x1", "mpi", 1, 1), ("train1x1", "mpi", 1, 1),
        ("train2x1", "mpi", 2, 1)]

def final(name, rep):
    try:
        last = open(os.path.join(tmp, "%s.%d.json" % (name, rep))).read().splitlines()[-1]
        obj = json.loads(last)
        return obj if obj.get("final") else None
    except (OSError, IndexError, ValueError):
        return None

def med(rows, key, default=0.0):
    vals = [r.get(key, default) for r in rows]
    return statistics.median(vals) if vals else float("nan")

print("%-9s %5s %7s %9s %10s %9s %10s %9s %8s %9s" % (
    "run", "ranks", "threads", "s/round", "comm ms/r", "comm %", "wait ms/r",
    "wait %", "RSS MB", "test_acc"))
summary = {"bench": "mpi", "bit_identical": same}
for name, kind, ranks, threads in runs:
    rows = [f for f in (final(name, r) for r in range(1, reps + 1)) if f]
    if not rows:
        print("%-9s %5d %7d   n/a (failed)" % (name, ranks, threads))
        continue
    spr = med(rows, "sec_per_round")
    n = rows[0]["rounds"]
    comm = med(rows, "comm_secs") / n
    wait = med(rows, "wait_secs_max") / n
    rss = med(rows, "rss_mb_max", med(rows, "peak_rss_mb"))
    print("%-9s %5d %7d %9.4f %10.2f %8.1f%% %10.2f %8.1f%% %8.0f %9.4f" % (
        name, ranks, threads, spr, 1e3 * comm, 100 * comm / spr, 1e3 * wait,
        100 * wait / spr, rss, rows[0]["test_acc"]))
    summary[name] = {"ranks": ranks, "threads": threads, "sec_per_round": round(spr, 5),
                     "comm_ms_per_round": round(1e3 * comm, 3),
                     "comm_share": round(comm / spr, 4),
                     "wait_ms_per_round": round(1e3 * wait, 3),
                     "wait_share": round(wait / spr, 4),
                     "reduce_bytes": rows[0].get("reduce_bytes"),
                     "rss_mb_max": round(rss, 1),
                     "peak_rss_mb_max": rows[0].get("peak_rss_mb_max", rows[0]["peak_rss_mb"]),
                     "rows_max": rows[0].get("rows_max"),
                     "test_acc": rows[0]["test_acc"]}
print()
one, train = summary.get("mpi1x1"), summary.get("train1x1")
if one and train:
    per_client = train["sec_per_round"] / 100
    evaluation = one["sec_per_round"] - train["sec_per_round"]
    summary["per_client_secs_1thread"] = round(per_client, 5)
    summary["eval_secs_1thread"] = round(evaluation, 4)
    print("one core: %.2f ms to train and fold one client; %.1f ms to evaluate "
          "on the 10,000 test images" % (1e3 * per_client, 1e3 * evaluation))
b = summary.get("mpi2x1", {}).get("reduce_bytes")
if b:
    print("reduced per round: %d bytes (16 per parameter, slot and status word)" % b)
print("models: %s" % ("all byte-identical to fedc-sim's (cmp)" if same
                      else "DIFFER from fedc-sim's (see above)"))
print(json.dumps(summary))
sys.exit(0 if same else 1)
PY
