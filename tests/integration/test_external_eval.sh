#!/bin/sh
# test_external_eval.sh - an external trainer in a job with a schema and
# federated evaluation (tests/integration/external_eval_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_external_eval: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec /usr/bin/python3 tests/integration/external_eval_tests.py "$@"
