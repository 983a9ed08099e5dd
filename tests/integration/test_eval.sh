#!/bin/sh
# test_eval.sh - federated evaluation, metrics by task and class weights
# against scikit-learn on the pooled predictions (tests/integration/eval_tests.py),
# and the dashboard's metric chart and confusion matrix in headless Chromium
# (tests/integration/dashboard_eval.sh).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client fedc-sim; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_eval: $BUILD/bin/$b is not built"
    exit 1
  fi
done
# numpy and scikit-learn are Debian's (python3-numpy, python3-sklearn)
exec /usr/bin/python3 tests/integration/eval_tests.py "$@"
