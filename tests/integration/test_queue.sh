#!/bin/sh
# test_queue.sh - the job queue daemon and site services on loopback
# (tests/integration/queue_tests.py): jobs one after another on the same
# site services, a site's policy declining one, kill -9 mid-job, the admin
# endpoint, export.
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_queue: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/queue_tests.py "$@"
