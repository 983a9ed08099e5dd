#!/bin/sh
# test_attack_http.sh - tests/integration/attack_http.py with the whole 64
# MiB of each refused body pushed (FEDC_ATTACK_FULL=1), against the normal
# build.
BUILD=${FEDC_BUILD:-build}
[ -x "$BUILD/bin/fedc-coordinator" ] || { echo "test_attack_http (long): not built"; exit 77; }
FEDC_ATTACK_FULL=1 exec python3 tests/integration/attack_http.py
