#!/bin/sh
# test_secagg.sh - secure aggregation through the real coordinator and real
# clients on loopback (tests/integration/secagg_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_secagg: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/secagg_tests.py "$@"
