#!/bin/sh
# test_runner.sh - scripts/run-tests.sh itself, on folders of fake suites
# (FEDC_TEST_DIR) and fake unit binaries: a skipped suite (exit 77) or case
# (lib.sh's skip, cmocka's "[  SKIPPED ]") is counted as skipped and never
# as passed, failures are counted, the closing lines read
# "test cases:" then "N passed, N failed, N skipped", and the exit status
# is 1 on any failure and 0 when there are only passes and skips.
. "$(dirname "$0")/lib.sh"
ROOT=$(pwd)
RUNNER="sh $ROOT/scripts/run-tests.sh"

# suite DIR NAME BODY: a fake integration suite DIR/test_NAME.sh
suite() {
  mkdir -p "$1"
  printf '%s\n' "$3" >"$1/test_$2.sh"
}
LIB=". $ROOT/tests/integration/lib.sh"
CMOCKA_OK='echo "[==========] 5 test(s) run."
echo "[  PASSED  ] 3 test(s)."
echo "[  SKIPPED ] 2 test(s), listed below:"
echo "[  SKIPPED ] test_gpu_a"
echo "[  SKIPPED ] test_gpu_b"
echo " 2 SKIPPED TEST(S)"'

# every kind of suite in one folder
D="$T/mixed"
suite "$D" pass "$LIB
ok one; ok two; skip \"three: no tool here\"
summary test_pass"
suite "$D" fail "$LIB
ok one; bad two
summary test_fail"
suite "$D" skip77 'echo "test_skip77: SKIPPED: mpirun is not installed"; exit 77'
suite "$D" allskip "$LIB
skip \"one: no GPU\"
summary test_allskip"
suite "$D" cmocka "$CMOCKA_OK"
suite "$D" plain 'echo "lint: ok"'
suite "$D" crash 'echo "half a line"; exit 3'
# a fake unit binary given on the command line: cmocka with a failure
U="$T/test_unit"
printf '%s\n' '#!/bin/sh' 'echo "[  PASSED  ] 4 test(s)."' \
  'echo "[  FAILED  ] 1 test(s), listed below:"' 'echo "[  FAILED  ] test_x"' 'exit 1' >"$U"
chmod +x "$U"

expect 1 "" "a failing suite fails the run" -- env FEDC_TEST_DIR="$D" $RUNNER "$U"
cp "$T/out" "$T/mixed.out"
last=$(tail -n 1 "$T/mixed.out")
before=$(tail -n 2 "$T/mixed.out" | head -n 1)
# cases: pass 2 (pass) + 1 (fail) + 4 (unit) + 3 (cmocka) + 1 (plain); fail 1
# (fail) + 1 (unit) + 1 (crash, no counts); skip 1 (pass) + 1 + 1 + 2 (cmocka)
want="11 passed, 3 failed, 5 skipped"
[ "$last" = "$want" ] && ok "mixed: the last line is '$want'" \
  || bad "mixed: the last line is '$last', want '$want'"
[ "$before" = "test cases:" ] && ok "mixed: the line before says cases" \
  || bad "mixed: the line before the last is '$before'"
# suites: passed pass, cmocka, plain; failed fail, crash, unit; skipped skip77, allskip
grep -q "^test suites: 3 passed, 3 failed, 2 skipped " "$T/mixed.out" \
  && ok "mixed: 3 suites passed, 3 failed, 2 skipped" \
  || bad "mixed: suites line: $(grep '^test suites' "$T/mixed.out")"
grep -q "^failed: test_unit test_crash.sh test_fail.sh$" "$T/mixed.out" \
  && ok "mixed: the failed suites are named" \
  || bad "mixed: $(grep '^failed' "$T/mixed.out")"
for s in test_allskip.sh "test_cmocka.sh(2)" "test_pass.sh(1)" test_skip77.sh; do
  grep "^skipped:" "$T/mixed.out" | grep -qF " $s" \
    && ok "mixed: $s is listed as skipped" \
    || bad "mixed: $s not in '$(grep '^skipped' "$T/mixed.out")'"
done

# passes and skips only: exit 0, the skips still counted
D="$T/clean"
suite "$D" pass "$LIB
ok one
summary test_pass"
suite "$D" skip77 'exit 77'
suite "$D" cmocka "$CMOCKA_OK"
U="$T/test_unit_ok"
printf '%s\n' '#!/bin/sh' 'echo "[  PASSED  ] 1 test(s)."' >"$U"
chmod +x "$U"
expect 0 "^1 passed, 0 failed, 0 skipped$" "a passing unit binary alone: exit 0" -- \
  env FEDC_TEST_DIR="$T/none" $RUNNER "$U"
expect 0 "^4 passed, 0 failed, 3 skipped$" "passes and skips only: exit 0, skips counted" -- \
  env FEDC_TEST_DIR="$D" $RUNNER
grep -q "^test suites: 2 passed, 0 failed, 1 skipped " "$T/out" \
  && ok "clean: 2 suites passed, 1 skipped" \
  || bad "clean: suites line: $(grep '^test suites' "$T/out")"

# only skips: exit 0, nothing passed
D="$T/skips"
suite "$D" skip77 'exit 77'
expect 0 "^0 passed, 0 failed, 1 skipped$" "only a skipped suite: exit 0, 0 passed" -- \
  env FEDC_TEST_DIR="$D" $RUNNER

# a suite that exits 77 but reports a failed case is failed
D="$T/liar"
suite "$D" liar 'echo "test_liar: 0 passed, 1 failed, 0 skipped"; exit 77'
expect 1 "^0 passed, 1 failed, 0 skipped$" "exit 77 with a failed case fails" -- \
  env FEDC_TEST_DIR="$D" $RUNNER
# and one that exits 0 while reporting a failed case too
suite "$D" liar 'echo "test_liar: 2 passed, 1 failed"; exit 0'
expect 1 "^2 passed, 1 failed, 0 skipped$" "exit 0 with a failed case fails" -- \
  env FEDC_TEST_DIR="$D" $RUNNER

summary test_runner
