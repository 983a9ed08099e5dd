#!/bin/sh
# test_scaffold.sh - SCAFFOLD over the wire: restarts of the coordinator and
# of a client end on the model of an uninterrupted run; the variate delta's
# own checks (tests/integration/scaffold_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_scaffold: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/scaffold_tests.py "$@"
