#!/bin/sh
# run-tests.sh - run every unit test binary given and every integration
# script under tests/integration, then print one closing line
# "N passed, N failed". Exits non-zero if anything failed.
set -u
BUILD=${FEDC_BUILD:-build}
export FEDC_BUILD="$BUILD"
pass=0
fail=0
failed=""
start=$(date +%s)
for t in "$@"; do
  name=$(basename "$t")
  echo "== $name"
  if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $name"; fi
done
for t in tests/integration/test_*.sh; do
  [ -e "$t" ] || continue
  name=$(basename "$t")
  echo "== $name"
  if sh "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $name"; fi
done
echo
[ -n "$failed" ] && echo "failed:$failed"
echo "test suites: $(( $(date +%s) - start ))s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
