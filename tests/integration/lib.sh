# lib.sh - what the integration scripts share (sourced, not run: the runner
# only runs test_*.sh): a scratch directory $T removed on exit, the ok/bad
# tally, and `expect` for a command's exit code and message.
#
#   . "$(dirname "$0")/lib.sh"
#   expect 2 "unknown option" "a bad option is a usage error" -- "$BIN" --frob
#   summary test_name      # prints the tally; its status is the verdict
T=$(mktemp -d /tmp/fedc-it-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL $1"; }

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

summary() {
  echo "$1: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
