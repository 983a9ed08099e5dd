#!/bin/sh
# test_model_delta_file.sh - model deltas for models downloaded into
# [client] state_dir (16 MiB and more): rebuilt from the model file in
# slices, byte-identical to the run without deltas, a cut delta resumed
# (tests/integration/delta_file_tests.py; needs /usr/bin/python3 with numpy).
BUILD=${FEDC_BUILD:-build}
for b in bin/fedc-coordinator bin/fedc-client tests/faultproxy; do
  if [ ! -x "$BUILD/$b" ]; then
    echo "test_model_delta_file: $BUILD/$b is not built"
    exit 1
  fi
done
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  echo "test_model_delta_file: skipped: /usr/bin/python3 has no numpy (apt-get install python3-numpy)"
  exit 77
fi
exec /usr/bin/python3 tests/integration/delta_file_tests.py "$@"
