#!/bin/sh
# test_mpi.sh - fedc-sim-mpi under mpirun on loopback (shared memory only):
# with 1, 2 and 3 ranks the saved model is byte-identical (cmp) to plain
# fedc-sim's for the same config and seed, for softmax on an iid split and a
# small MLP on a dirichlet split, and the --json round lines are fedc-sim's
# (all but "secs"); the final line carries the MPI figures; the exit codes
# are fedc-sim's (2 usage, 3 --save, 1 a rank's training diverged).
# Skipped (exit 77, which scripts/run-tests.sh counts as skipped, never as
# passed) when fedc-sim-mpi was not built (no OpenMPI) or mpirun is missing.
set -u
BUILD=${FEDC_BUILD:-build}
SIM="$BUILD/bin/fedc-sim"
MPI="$BUILD/bin/fedc-sim-mpi"
if [ ! -x "$MPI" ]; then
  echo "test_mpi: SKIPPED: $MPI was not built (OpenMPI's mpicc was not found;"
  echo "          scripts/install-deps.sh installs libopenmpi-dev openmpi-bin)"
  exit 77
fi
if ! command -v mpirun >/dev/null 2>&1; then
  echo "test_mpi: SKIPPED: mpirun not found (apt-get install openmpi-bin)"
  exit 77
fi
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# LeakSanitizer (SANITIZE builds) would report OpenMPI's own allocations;
# fedc's leaks are checked by the unit tests and plain fedc-sim.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0"
# one machine, shared memory between the ranks, runtime on lo: nothing
# leaves the machine
RUN="mpirun --oversubscribe --bind-to none --mca pml ob1 --mca btl self,vader --mca oob_tcp_if_include lo"

. "$(dirname "$0")/lib.sh"

SOFTMAX="--set job.rounds=3 --set sim.clients=20 --set job.clients_per_round=4 --set model.type=softmax"
MLP="--set job.rounds=3 --set sim.clients=20 --set job.clients_per_round=4 --set model.type=mlp
 --set model.hidden=32,16 --set sim.partition=dirichlet --set sim.alpha=0.5 --set train.lr=0.05"

# reference NAME CONFIG: plain fedc-sim's model and --json lines
reference() {
  # shellcheck disable=SC2086
  if ! "$SIM" $2 --json --save "$T/$1.sim.st" >"$T/$1.sim.json" 2>"$T/err"; then
    bad "fedc-sim $1: $(head -c 300 "$T/err")"
    return 1
  fi
  grep -v '"final"' "$T/$1.sim.json" | sed 's/,"secs":[0-9.]*//' >"$T/$1.sim.rounds"
}

# same NAME RANKS CONFIG: fedc-sim-mpi on RANKS ranks gives fedc-sim's bytes
same() {
  out="$T/$1.$2"
  # shellcheck disable=SC2086
  if ! $RUN -np "$2" "$MPI" $3 --threads 1 --json --save "$out.st" >"$out.json" 2>"$T/err"; then
    bad "$1 on $2 ranks: mpirun failed: $(grep -v -- '---' "$T/err" | head -c 400)"
    return
  fi
  if cmp -s "$T/$1.sim.st" "$out.st"; then ok "$1, $2 ranks: model byte-identical to fedc-sim's"
  else bad "$1, $2 ranks: model differs from fedc-sim's ($(cmp "$T/$1.sim.st" "$out.st"))"; fi
  grep -v '"final"' "$out.json" | sed 's/,"secs":[0-9.]*//' >"$out.rounds"
  if [ -s "$out.rounds" ] && cmp -s "$T/$1.sim.rounds" "$out.rounds"; then
    ok "$1, $2 ranks: --json round lines are fedc-sim's"
  else
    bad "$1, $2 ranks: --json lines differ: $(diff "$T/$1.sim.rounds" "$out.rounds" | head -5)"
  fi
}

reference softmax "$SOFTMAX" && same softmax 2 "$SOFTMAX"
reference mlp "$MLP" && {
  same mlp 1 "$MLP"
  same mlp 2 "$MLP"
  same mlp 3 "$MLP"
}

# the final line: fedc-sim's keys plus the MPI figures
if [ -s "$T/softmax.2.json" ] && python3 - "$T/softmax.2.json" <<'PY'
import json, sys
final = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert final["final"] is True and final["rounds"] == 3 and final["ranks"] == 2, final
for k in ("test_acc", "secs", "sec_per_round", "comm_secs", "comm_share",
          "wait_secs", "reduce_bytes", "rss_mb_max"):
    assert k in final, k
assert 0 <= final["comm_share"] <= 1, final
# 7850 softmax weights + 1 total + 3 x 4 slots + 1 status word, 16 bytes each
assert final["reduce_bytes"] == 16 * (7850 + 1 + 12 + 1), final
# each rank keeps only its 10 clients' 3,000 rows each, not the 60,000
assert final["rows_min"] == final["rows_max"] == 30000, final
PY
then ok "final line has the MPI figures; each rank holds half the rows"; else bad "final line: $(tail -n 1 "$T/softmax.2.json")"; fi

expect 0 "usage: fedc-sim-mpi" "--help exits 0" -- "$MPI" --help
expect 0 "fedc-sim-mpi [0-9]" "--version exits 0" -- "$MPI" --version
expect 2 "unknown option" "unknown option: exit 2 on 2 ranks" -- $RUN -np 2 "$MPI" --frobnicate
if [ "$(grep -c "unknown option" "$T/err")" -eq 1 ]; then ok "the usage error is printed once, by rank 0"
else bad "the usage error is printed $(grep -c "unknown option" "$T/err") times"; fi
# shellcheck disable=SC2086
expect 3 "--save /nonexistent-dir" "unwritable --save: exit 3" -- $RUN -np 2 "$MPI" $SOFTMAX --quiet --save /nonexistent-dir/m.st
# shellcheck disable=SC2086
expect 1 "loss became inf" "a diverging round fails every rank: exit 1" -- \
  $RUN -np 2 "$MPI" $SOFTMAX --quiet --set model.type=linreg --set train.lr=100

summary test_mpi
