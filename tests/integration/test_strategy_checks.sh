#!/bin/sh
# test_strategy_checks.sh - every driver checks the strategy's declared
# capabilities (fedc/strategy.h) when it reads its config, so that no
# combination is silently ignored: fedc-sim refuses secure aggregation
# (which it does not implement) and DP with fedbuff; fedc-sim-mpi refuses
# what cannot be split over ranks (median, fedbuff, DP) at start, not in
# round 1; the coordinator refuses scaffold with DP or without
# variate_samples, and secure aggregation with a
# strategy that needs single updates. Each refusal is exit 2 with a message
# naming the key.
set -u
BUILD=${FEDC_BUILD:-build}
SIM="$BUILD/bin/fedc-sim"
MPI="$BUILD/bin/fedc-sim-mpi"
COORD="$BUILD/bin/fedc-coordinator"
. "$(dirname "$0")/lib.sh"

FAST="--set job.rounds=2 --set sim.clients=20 --set job.clients_per_round=4 --quiet"

# fedc-sim
expect 2 "\[privacy\] secure_aggregation = true: the simulator does not implement secure aggregation" \
  "fedc-sim refuses secure aggregation, naming the key" -- "$SIM" $FAST --set privacy.secure_aggregation=true
expect 2 "\[privacy\] noise_multiplier = 1.1: strategy fedbuff does not declare differential-privacy support" \
  "fedc-sim refuses DP with fedbuff" -- "$SIM" $FAST --set strategy.name=fedbuff --set privacy.noise_multiplier=1.1
expect 2 "\[strategy\] name = geomedian: must be one of fedavg, fedavgm" \
  "fedc-sim refuses a strategy nobody registered" -- "$SIM" $FAST --set strategy.name=geomedian
expect 0 "" "fedc-sim runs fedbuff" -- "$SIM" $FAST --set strategy.name=fedbuff --set strategy.buffer_k=3 --json
[ "$(grep -c '"round"' "$T/out")" = 2 ] && ok "fedbuff: 2 rounds printed" || bad "fedbuff rounds: $(cat "$T/out")"
expect 0 "" "fedc-sim runs median with DP" -- "$SIM" $FAST --set strategy.name=median --set privacy.noise_multiplier=0.5

# fedc-sim-mpi: refused at start (before any round), on every rank
if [ -x "$MPI" ] && command -v mpirun >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0"
  RUN="mpirun --oversubscribe --bind-to none --mca pml ob1 --mca btl self,vader --mca oob_tcp_if_include lo -np 2"
  expect 2 "\[strategy\] name = median: strategy median is not additive (it needs each update), so fedc-sim-mpi cannot split" \
    "fedc-sim-mpi refuses median at start" -- $RUN "$MPI" $FAST --json --set strategy.name=median
  if grep -q '"round"' "$T/out"; then bad "fedc-sim-mpi median ran a round"; else ok "fedc-sim-mpi median ran no round"; fi
  expect 2 "strategy fedbuff is asynchronous" \
    "fedc-sim-mpi refuses fedbuff" -- $RUN "$MPI" $FAST --set strategy.name=fedbuff
  expect 2 "strategy scaffold updates its server control variate from every client's variate delta; fedc-sim-mpi cannot merge" \
    "fedc-sim-mpi refuses scaffold" -- $RUN "$MPI" $FAST --set strategy.name=scaffold
  expect 2 "\[privacy\] noise_multiplier = 1: differential privacy" \
    "fedc-sim-mpi refuses DP" -- $RUN "$MPI" $FAST --set privacy.noise_multiplier=1
  expect 2 "\[privacy\] secure_aggregation = true" \
    "fedc-sim-mpi refuses secure aggregation" -- $RUN "$MPI" $FAST --set privacy.secure_aggregation=true
  expect 2 "max_client_share = 0.5: fedc-sim-mpi cannot cap a client's weight across processes" \
    "fedc-sim-mpi refuses a share cap it cannot apply" -- $RUN "$MPI" $FAST --set strategy.max_client_share=0.5
  expect 0 "" "fedc-sim-mpi runs with the share cap at its default" -- $RUN "$MPI" $FAST
else
  echo "  skipped fedc-sim-mpi cases: $MPI or mpirun missing (OpenMPI)"
fi

# the coordinator: refused before it opens its store or its port
expect 2 "\[model\] inputs = 0: must be >= 1 for the coordinator" \
  "the coordinator takes fedbuff (stopped by the next check)" -- "$COORD" --set strategy.name=fedbuff
expect 2 "\[privacy\] noise_multiplier = 1: strategy scaffold sends each client's control variate" \
  "the coordinator refuses scaffold with DP" -- "$COORD" --set strategy.name=scaffold --set privacy.noise_multiplier=1
expect 2 "\[strategy\] variate_samples = 0: strategy scaffold" \
  "the coordinator needs scaffold's variate_samples" -- "$COORD" --set strategy.name=scaffold --set model.inputs=784 --set model.classes=10
expect 2 "\[privacy\] secure_aggregation = true: secure aggregation shows only the sum of the updates, and strategy median is not additive" \
  "the coordinator refuses secure aggregation with median" -- "$COORD" --set strategy.name=median --set privacy.secure_aggregation=true
expect 2 "secure aggregation cannot be combined with a norm bound" \
  "the coordinator refuses secure aggregation with a norm bound" -- "$COORD" --set privacy.secure_aggregation=true --set strategy.norm_bound=3

# DP with secure aggregation: only with the noise at the sites ([privacy] noise_at)
expect 2 "noise_multiplier = 1 with secure_aggregation = true .*set \[privacy\] noise_at = sites" \
  "the coordinator refuses central DP under secure aggregation, naming noise_at" -- "$COORD" --set privacy.secure_aggregation=true --set privacy.noise_multiplier=1
expect 2 "\[privacy\] noise_at = sites needs secure_aggregation = true" \
  "the coordinator refuses noise at the sites without secure aggregation" -- "$COORD" --set privacy.noise_at=sites --set privacy.noise_multiplier=1
expect 2 "\[privacy\] noise_at = sites: the simulator does not implement secure aggregation" \
  "fedc-sim refuses noise at the sites" -- "$SIM" $FAST --set privacy.noise_at=sites --set privacy.noise_multiplier=1 --set privacy.secure_aggregation=true

summary test_strategy_checks
