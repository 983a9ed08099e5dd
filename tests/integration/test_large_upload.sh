#!/bin/sh
# test_large_upload.sh - chunked, resumable uploads of updates
# (tests/integration/large_upload_tests.py): the chunk checks (a bad chunk
# checksum refused, a gap answered with the offset, resends acknowledged),
# and a tensor job whose 18 MiB updates are cut mid-upload by the fault
# proxy (tests/tools/faultproxy.c --cut-at) and resume: committed models
# byte-identical to the uncut run's, less than half an update sent again.
BUILD=${FEDC_BUILD:-build}
for b in bin/fedc-coordinator bin/fedc-client tests/faultproxy; do
  if [ ! -x "$BUILD/$b" ]; then
    echo "test_large_upload: $BUILD/$b is not built"
    exit 1
  fi
done
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  echo "test_large_upload: skipped: /usr/bin/python3 has no numpy (apt-get install python3-numpy)"
  exit 77
fi
exec /usr/bin/python3 tests/integration/large_upload_tests.py "$@"
