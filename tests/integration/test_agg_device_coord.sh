#!/bin/sh
# test_agg_device_coord.sh - [strategy] device in the coordinator, as real
# processes on loopback (tests/integration/agg_device_coord_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_agg_device_coord: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/agg_device_coord_tests.py "$@"
