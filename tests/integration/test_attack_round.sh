#!/bin/sh
# test_attack_round.sh - lying clients and an unlucky operator against a
# real coordinator (tests/integration/attack_round_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_attack_round: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/attack_round_tests.py "$@"
