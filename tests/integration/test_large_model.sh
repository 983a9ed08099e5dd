#!/bin/sh
# test_large_model.sh - large-model mode ([server] spill_above_mb)
# (tests/integration/large_model_tests.py): committed models byte-identical
# with the mode on and off (share cap, chunked updates, a failed commit,
# a kill -9 and restart), a strategy the
# mode cannot run refused at start, and the coordinator's peak RSS with a
# 32 MiB model under 3x the model plus its own size.
BUILD=${FEDC_BUILD:-build}
for b in bin/fedc-coordinator bin/fedc-client; do
  if [ ! -x "$BUILD/$b" ]; then
    echo "test_large_model: $BUILD/$b is not built"
    exit 1
  fi
done
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  echo "test_large_model: skipped: /usr/bin/python3 has no numpy (apt-get install python3-numpy)"
  exit 77
fi
exec /usr/bin/python3 tests/integration/large_model_tests.py "$@"
