#!/bin/sh
# test_attack_tls.sh - hostile peers at the TLS and connection level: the
# handshake deadline, per-source limits, reserved slots, 403 for revoked
# certificates on every path, session tickets across a restart, expired
# client certificates, and a short slow-connection + handshake flood
# (tests/integration/attack_tls_tests.py). The long flood is
# tests/long/test_flood.sh.
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_attack_tls: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/attack_tls_tests.py "$@"
