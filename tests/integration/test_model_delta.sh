#!/bin/sh
# test_model_delta.sh - global models downloaded as lossless deltas
# ([server] model_deltas) through the real coordinator and clients on
# loopback over mutual TLS: every committed model byte-identical to the run
# without deltas, fewer bytes down, a stale base gets the whole model
# (tests/integration/delta_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_model_delta: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/delta_tests.py "$@"
