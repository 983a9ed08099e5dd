#!/bin/sh
# test_early_fold.sh - chunked uploads folded as their bytes arrive
# (tests/integration/early_fold_tests.py): committed models byte-identical
# to folding at completion, with a bad chunk, a cut and resume, a whole
# SHA-256 mismatch, a refused update, a replaced upload, an upload
# abandoned at the round's deadline and a kill -9 with uploads part
# folded; and with three sites uploading in chunks at once, sums in memory
# and in large-model mode; and under the default share cap with a site
# claiming a large count, two sites in chunks and one whole.
BUILD=${FEDC_BUILD:-build}
for b in bin/fedc-coordinator bin/fedc-client; do
  if [ ! -x "$BUILD/$b" ]; then
    echo "test_early_fold: $BUILD/$b is not built"
    exit 1
  fi
done
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  echo "test_early_fold: skipped: /usr/bin/python3 has no numpy (apt-get install python3-numpy)"
  exit 77
fi
exec /usr/bin/python3 tests/integration/early_fold_tests.py "$@"
