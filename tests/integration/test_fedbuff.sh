#!/bin/sh
# test_fedbuff.sh - FedBuff over the wire: a slow site does not hold the others back, a kill -9
# of the coordinator keeps every committed step, steps replayed bit for bit
# (tests/integration/fedbuff_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_fedbuff: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/fedbuff_tests.py "$@"
