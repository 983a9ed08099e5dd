#!/bin/sh
# test_churn.sh - a short churn probe (tests/integration/churn.py): 20
# cycles of 40 clients joining, long-polling and dropping while other
# fingerprints are allowed. Run it with FEDC_BUILD=build/san after `make
# SANITIZE=address,undefined` for the use-after-free checks to bite; the
# 1,000-cycle version is tests/long/test_churn.sh.
BUILD=${FEDC_BUILD:-build}
if [ ! -x "$BUILD/bin/fedc-coordinator" ]; then
  echo "test_churn: $BUILD/bin/fedc-coordinator is not built"
  exit 1
fi
python3 tests/integration/churn.py --cycles 20 --clients 40 || exit 1
echo "test_churn: 1 passed, 0 failed, 0 skipped"
