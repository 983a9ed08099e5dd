# lib.sh - what the integration scripts share (sourced, not run: the runner
# only runs test_*.sh): a scratch directory $T removed on exit, the
# ok/bad/skip tally, and `expect` for a command's exit code and message.
#
#   . "$(dirname "$0")/lib.sh"
#   expect 2 "unknown option" "a bad option is a usage error" -- "$BIN" --frob
#   command -v clang >/dev/null || skip "clang builds: clang is not installed"
#   summary test_name      # prints the tally; its status is the verdict
#   skip_suite test_name "mpirun is not installed"   # the whole suite: exit 77
#
# The runner (scripts/run-tests.sh) reads summary's line
# "NAME: N passed, N failed, N skipped" for the cases, and the exit status
# for the suite: 0 passed, SKIP_RC (77, automake's) skipped, else failed.
# A case or a suite that cannot run is skipped, never passed.
T=$(mktemp -d /tmp/fedc-it-XXXXXX)
trap 'rm -rf "$T"' EXIT
SKIP_RC=77
pass=0
fail=0
skipped=0
ok() { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL $1"; }
# skip DESCRIPTION: a case that could not run here (say why in DESCRIPTION)
skip() { skipped=$((skipped + 1)); echo "  skip $1"; }

# skip_suite NAME REASON: nothing of the suite can run here; says so and
# exits SKIP_RC (with the cases counted so far, if any)
skip_suite() {
  echo "$1: SKIPPED: $2"
  skipped=$((skipped + 1))
  echo "$1: $pass passed, $fail failed, $skipped skipped"
  [ "$fail" -eq 0 ] || exit 1
  exit "$SKIP_RC"
}

# expect CODE PATTERN DESCRIPTION -- command...: the command exits CODE and,
# when PATTERN is not empty, says PATTERN on stderr or stdout ($T/err, $T/out).
# mpirun's banners (lines of dashes) are left out of what a failure shows.
expect() {
  code=$1 pat=$2 desc=$3
  shift 4
  "$@" >"$T/out" 2>"$T/err"
  rc=$?
  if [ "$rc" -ne "$code" ]; then
    bad "$desc: exit $rc, want $code ($(grep -v -- '-----' "$T/err" | head -c 300))"
    return
  fi
  if [ -n "$pat" ] && ! grep -q -- "$pat" "$T/err" "$T/out"; then
    bad "$desc: output lacks '$pat': $(grep -v -- '-----' "$T/err" | head -c 300)"
    return
  fi
  ok "$desc"
}

# summary NAME: the tally; status 1 if a case failed, SKIP_RC if every case
# was skipped, else 0
summary() {
  echo "$1: $pass passed, $fail failed, $skipped skipped"
  [ "$fail" -eq 0 ] || return 1
  [ "$pass" -eq 0 ] && [ "$skipped" -gt 0 ] && return "$SKIP_RC"
  return 0
}
