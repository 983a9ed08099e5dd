#!/bin/sh
# test_download_big.sh - the download suite (tests/integration/download_tests.py)
# at size: a 96 MiB model cut by the fault proxy and resumed, and 8
# downloads of a 256 MiB model at once, the coordinator's VmHWM growing by
# less than one model.
BUILD=${FEDC_BUILD:-build}
for b in bin/fedc-coordinator bin/fedc-client tests/faultproxy; do
  if [ ! -x "$BUILD/$b" ]; then
    echo "test_download_big: $BUILD/$b is not built"
    exit 1
  fi
done
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  echo "test_download_big: skipped: /usr/bin/python3 has no numpy"
  exit 77
fi
FEDC_DL_MB=${FEDC_DL_MB:-96} FEDC_DL_BIG_MB=${FEDC_DL_BIG_MB:-256} \
  exec /usr/bin/python3 tests/integration/download_tests.py "$@"
