#!/bin/sh
# relays.sh - the root coordinator's bytes in and out and CPU time per round
# with relays against flat, at 1,000 simulated clients (docs/relays.md,
# bench/README.md): flat = one coordinator with FEDC_RELAY_CLIENTS (1000)
# clients; relayed = the root with FEDC_RELAY_RELAYS (10) relays of 100
# clients each. The clients are fedc-load's (bench/load.c, rounds mode,
# --sites for the relays); the softmax (784 -> 10) and MLP (784-200-200-10)
# models, FEDC_RELAY_ROUNDS (4) rounds each. Only the root process is
# measured (/metrics byte counters, /proc/<pid>/io, /proc/<pid>/stat); the
# committed models of the two shapes are compared byte for byte.
# The work is in bench/relays.py; this script builds what it needs.
#
# Standalone, like load.sh. Knobs (environment): FEDC_BUILD (build),
# FEDC_RELAY_CLIENTS, FEDC_RELAY_RELAYS, FEDC_RELAY_ROUNDS,
# FEDC_RELAY_THREADS (2, fedc-load's threads), FEDC_RELAY_MODELS
# ("softmax mlp"). About 3 minutes on 2 cores. Exit 0 when every run
# finished and the models are bit-identical, 1 otherwise.
set -eu

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${FEDC_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac

if [ ! -x "$BUILD/bin/fedc-coordinator" ]; then
  echo "relays: $BUILD/bin/fedc-coordinator not found; build it first (make all)" >&2
  exit 1
fi
if [ ! -x "$BUILD/bin/fedc-load" ]; then
  make -C "$ROOT" --no-print-directory BUILD="$BUILD" "$BUILD/bin/fedc-load" >&2
fi

# one descriptor per connection: 1,000 clients and the relays' links
want=4096
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  ulimit -Hn "$want" 2>/dev/null || echo "relays: cannot raise the hard file limit from $hard" >&2
fi
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$want" ] || want=$(ulimit -Hn)
ulimit -Sn "$want"

FEDC_BUILD_ABS=$BUILD FEDC_ROOT=$ROOT exec python3 "$BENCH_DIR/relays.py"
