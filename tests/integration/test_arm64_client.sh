#!/bin/sh
# test_arm64_client.sh - fedc-client built for arm64 (make client-arm64) runs
# under qemu-user beside x86-64 clients, against the x86-64 coordinator over
# mutual TLS, to the end of a job with a correct model
# (tests/integration/arm64_client_tests.py says what "correct" means).
# Skipped (77) when the cross toolchain or qemu-aarch64 is missing and
# cannot be installed here (scripts/install-cross-deps.sh: root and apt);
# builds build/arm64/bin/fedc-client when the toolchain is there but the
# binary is not.
. "$(dirname "$0")/lib.sh"
BUILD=${FEDC_BUILD:-build}
ARM64_BIN=${FEDC_ARM64_BIN:-build/arm64/bin/fedc-client}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_arm64_client: $BUILD/bin/$b is not built"
    exit 1
  fi
done
QEMU=${FEDC_QEMU:-qemu-aarch64}
tools() { command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v "$QEMU" >/dev/null 2>&1; }
if ! tools; then
  if ! scripts/install-cross-deps.sh >"$T/deps" 2>&1; then
    skip_suite test_arm64_client "no arm64 cross toolchain or $QEMU, and they cannot be installed here: $(tail -n 1 "$T/deps")"
  fi
  tools || skip_suite test_arm64_client "aarch64-linux-gnu-gcc or $QEMU is not on PATH ($PATH)"
fi
if [ ! -x "$ARM64_BIN" ]; then
  if [ -n "${FEDC_ARM64_BIN:-}" ]; then
    echo "test_arm64_client: FEDC_ARM64_BIN=$ARM64_BIN is not built"
    exit 1
  fi
  make --no-print-directory client-arm64 >"$T/build" 2>&1 || {
    tail -n 20 "$T/build"; echo "test_arm64_client: make client-arm64 failed"; exit 1; }
fi
FEDC_ARM64_BIN=$ARM64_BIN FEDC_QEMU=$QEMU exec python3 tests/integration/arm64_client_tests.py "$@"
