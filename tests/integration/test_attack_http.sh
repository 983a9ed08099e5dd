#!/bin/sh
# test_attack_http.sh - the HTTP layer against hostile peers: pipelined
# floods, slow headers and bodies, bodies refused before they are read, HEAD
# (tests/integration/attack_http.py; the long cases are in tests/long/).
BUILD=${FEDC_BUILD:-build}
if [ ! -x "$BUILD/bin/fedc-coordinator" ]; then
  echo "test_attack_http: $BUILD/bin/fedc-coordinator is not built"
  exit 1
fi
exec python3 tests/integration/attack_http.py "$@"
