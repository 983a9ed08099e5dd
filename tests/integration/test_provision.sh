#!/bin/sh
# test_provision.sh - provisioning (pki init, enroll, sign, startup kits),
# certificate expiry, allow/revoke on the running daemon and the audit trail
# with the real binaries on loopback (tests/integration/provision_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_provision: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/provision_tests.py "$@"
