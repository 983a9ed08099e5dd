#!/bin/sh
# test_attack_round_long.sh - an enrolled client hammering old checkpoints
# and unselected updates while two honest clients train: honest rounds per
# second with and without it (tests/integration/attack_round_tests.py).
BUILD=${FEDC_BUILD:-build}
if [ ! -x "$BUILD/bin/fedc-coordinator" ]; then
  echo "test_attack_round_long: $BUILD/bin/fedc-coordinator is not built"
  exit 1
fi
exec python3 tests/integration/attack_round_tests.py test_hammering_does_not_starve
