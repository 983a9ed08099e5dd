#!/bin/sh
# test_queue.sh - the job queue daemon and site services on loopback
# (tests/integration/queue_tests.py), the acceptance test of issue 16: pki
# init, enroll and sign for 3 sites and an operator (no private key leaves
# its folder); jobs one after another on the same
# site services, a site's policy declining one, kill -9 mid-job, the admin
# endpoint with an admin certificate, export, audit and tampering.
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_queue: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/queue_tests.py "$@"
