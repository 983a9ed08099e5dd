#!/bin/sh
# test_churn.sh - the hardening suite's churn probe: 1,000 cycles of 100 clients
# joining, long-polling and dropping while other fingerprints are allowed,
# against the ASan+UBSan build (FEDC_ASAN_BUILD, default build/san): no
# sanitizer report, exit 0 at SIGTERM (tests/integration/churn.py).
# CHURN_CYCLES and CHURN_CLIENTS override the sizes.
BUILD=${FEDC_ASAN_BUILD:-build/san}
if [ ! -x "$BUILD/bin/fedc-coordinator" ]; then
  echo "test_churn (long): $BUILD/bin/fedc-coordinator is not built (make SANITIZE=address,undefined BUILD=$BUILD)"
  exit 77
fi
FEDC_BUILD=$BUILD exec python3 tests/integration/churn.py \
  --cycles "${CHURN_CYCLES:-1000}" --clients "${CHURN_CLIENTS:-100}"
