#!/bin/sh
# test_netfaults.sh - rounds and idle timeouts through a fault-injecting
# proxy on loopback (tests/integration/netfaults_tests.py, with
# tests/tools/faultproxy.c built as $BUILD/tests/faultproxy).
BUILD=${FEDC_BUILD:-build}
for b in bin/fedc-coordinator bin/fedc-client tests/faultproxy; do
  if [ ! -x "$BUILD/$b" ]; then
    echo "test_netfaults: $BUILD/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/netfaults_tests.py "$@"
