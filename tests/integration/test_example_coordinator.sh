#!/bin/sh
# test_example_coordinator.sh - examples/embedded_coordinator.c (a
# coordinator in a program's own libuv loop, built against the installed
# library by `make examples`) runs a real job with 3 fedc-client processes
# (tests/integration/example_coordinator_tests.py). Skipped (exit 77) when
# the example is not built.
BUILD=${FEDC_BUILD:-build}
EXAMPLE="$BUILD/examples/embedded_coordinator"
if [ ! -x "$EXAMPLE" ]; then
  echo "skipped: $EXAMPLE is not built (make examples)"
  exit 77
fi
if [ ! -x "$BUILD/bin/fedc-client" ] || [ ! -x "$BUILD/bin/fedc-coordinator" ]; then
  echo "test_example_coordinator: $BUILD/bin/fedc-client or fedc-coordinator is not built"
  exit 1
fi
exec python3 tests/integration/example_coordinator_tests.py "$EXAMPLE"
