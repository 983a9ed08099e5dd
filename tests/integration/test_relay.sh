#!/bin/sh
# test_relay.sh - hierarchical aggregation: 1 root, 2 relays, 6 clients on
# loopback, bit-identical to the flat run, also across a relay's kill -9
# (tests/integration/relay_tests.py, docs/relays.md).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_relay: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/relay_tests.py "$@"
