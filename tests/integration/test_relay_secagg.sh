#!/bin/sh
# test_relay_secagg.sh - secure aggregation within relays' subtrees: 1 root,
# 2 relays, 6 sites on loopback, bit-identical to the flat secure run; no
# plain update at a relay; a site killed after sharing its keys
# (tests/integration/relay_secagg_tests.py, docs/relays.md).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_relay_secagg: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/relay_secagg_tests.py "$@"
