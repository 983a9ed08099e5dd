#!/bin/sh
# test_external_stats.sh - an external-trainer site in a job with a schema:
# its statistics computed by fedc-client, its trainer standardizing with the
# federation's (tests/integration/external_stats_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_external_stats: $BUILD/bin/$b is not built"
    exit 1
  fi
done
# numpy and scikit-learn are Debian's (python3-numpy, python3-sklearn)
exec /usr/bin/python3 tests/integration/external_stats_tests.py "$@"
