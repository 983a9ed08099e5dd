#!/bin/sh
# test_download.sh - large model downloads (tests/integration/download_tests.py):
# a 24 MiB tensor-job model cut by the fault proxy resumes with Range and
# If-Range and arrives byte-identical, and so does one whose client is
# killed and restarted mid-download; 8 downloads of a 32 MiB model at
# once leave the coordinator's VmHWM within one model. The numpy trainer
# needs Debian's python3-numpy.
BUILD=${FEDC_BUILD:-build}
for b in bin/fedc-coordinator bin/fedc-client tests/faultproxy; do
  if [ ! -x "$BUILD/$b" ]; then
    echo "test_download: $BUILD/$b is not built"
    exit 1
  fi
done
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  echo "test_download: skipped: /usr/bin/python3 has no numpy (apt-get install python3-numpy)"
  exit 77
fi
exec /usr/bin/python3 tests/integration/download_tests.py "$@"
