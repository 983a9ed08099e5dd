#!/bin/sh
# test_hardening.sh - the quick hardening checks of `make test`
# (docs/hardening.md): a handful of allocation and store failures injected
# into a running coordinator, a real full disk and a read-only file system
# (tests/integration/fault_tests.py), and the coordinator killed with
# SIGKILL 5 times over one job (tests/integration/crashloop.py). `make
# test-long` runs every injection and 50 kills.
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_hardening: $BUILD/bin/$b is not built"
    exit 1
  fi
done
status=0
python3 tests/integration/fault_tests.py || status=1
# FEDC_CRASHLOOP_ARGS: a lighter job where everything runs slower (TSan)
python3 tests/integration/crashloop.py ${FEDC_CRASHLOOP_ARGS:---kills 5 --rounds 8} || status=1
exit $status
