#!/bin/sh
# test_coordinator.sh - the coordinator and clients as real processes on
# loopback (tests/integration/coordinator_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_coordinator: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/coordinator_tests.py "$@"
