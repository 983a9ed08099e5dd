#!/bin/sh
# run-tests.sh - run every unit test binary given and every integration
# script test_*.sh under $FEDC_TEST_DIR (tests/integration), then say how
# many suites and cases passed, failed and were skipped. The last two lines:
#
#   test cases:
#   412 passed, 0 failed, 9 skipped
#
# Exit 1 if anything failed; 0 when everything passed or was skipped.
#
# What a suite tells the runner (README.md, "Build targets"):
#  - its exit status: 0 passed, 77 skipped (automake's convention: a tool,
#    a device or a permission it needs is missing), anything else failed;
#  - its cases, read from its output: cmocka's summary lines
#    ("[  PASSED  ] N test(s).", "[  FAILED  ] N test(s), ...",
#    "[  SKIPPED ] N test(s), ..."), and lines "NAME: N passed, N failed"
#    or "NAME: N passed, N failed, N skipped" (tests/integration/lib.sh's
#    summary, harness.py's Suite), summed when there are several.
# A suite that reports no cases counts as one case, passed, failed or
# skipped with the suite. A suite that exits 0 with every case skipped is a
# skipped suite; one that exits 0 but reports failed cases, or fails with
# none, is failed (and a failing case is added for the latter).
set -u
BUILD=${FEDC_BUILD:-build}
export FEDC_BUILD="$BUILD"
DIR=${FEDC_TEST_DIR:-tests/integration}
SKIP_RC=77
tmp=$(mktemp -d /tmp/fedc-run-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
s_pass=0 s_fail=0 s_skip=0
c_pass=0 c_fail=0 c_skip=0
failed="" skipped=""
start=$(date +%s)

# cases NAME: the case counts in $tmp/out as "P F S" (empty if none)
cases() {
  awk '
    /^\[  PASSED  \] [0-9]+ test\(s\)/  { p += $4; n++ }
    /^\[  FAILED  \] [0-9]+ test\(s\)/  { f += $4; n++ }
    /^\[  SKIPPED \] [0-9]+ test\(s\)/  { s += $4; n++ }
    /^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$/ {
      p += $2; f += $4; if (NF >= 7) s += $6; n++
    }
    END { if (n) print p + 0, f + 0, s + 0 }
  ' "$tmp/out"
}

# run NAME COMMAND...: run one suite, its output shown as it comes and kept
# in $tmp/out, then tally it
run() {
  name=$1
  shift
  echo "== $name"
  { "$@"; echo $? >"$tmp/rc"; } 2>&1 | tee "$tmp/out"
  rc=$(cat "$tmp/rc" 2>/dev/null || echo 1)
  counts=$(cases)
  if [ -n "$counts" ]; then
    set -- $counts
    p=$1 f=$2 s=$3
  else
    p=0 f=0 s=0
  fi
  if [ "$rc" -eq "$SKIP_RC" ] && [ "$f" -eq 0 ]; then
    [ -z "$counts" ] && s=1
    verdict=skipped
  elif [ "$rc" -eq 0 ] && [ "$f" -eq 0 ]; then
    [ -z "$counts" ] && p=1
    if [ "$p" -eq 0 ] && [ "$s" -gt 0 ]; then verdict=skipped; else verdict=passed; fi
  else
    [ "$f" -eq 0 ] && f=1
    verdict=failed
  fi
  c_pass=$((c_pass + p)) c_fail=$((c_fail + f)) c_skip=$((c_skip + s))
  case $verdict in
  passed) s_pass=$((s_pass + 1)) ;;
  failed) s_fail=$((s_fail + 1)); failed="$failed $name" ;;
  skipped) s_skip=$((s_skip + 1)); skipped="$skipped $name" ;;
  esac
  if [ "$s" -gt 0 ] && [ "$verdict" != skipped ]; then
    skipped="$skipped $name($s)"
  fi
}

for t in "$@"; do
  run "$(basename "$t")" "$t"
done
for t in "$DIR"/test_*.sh; do
  [ -e "$t" ] || continue
  run "$(basename "$t")" sh "$t"
done
echo
[ -n "$failed" ] && echo "failed:$failed"
[ -n "$skipped" ] && echo "skipped:$skipped"
echo "test suites: $s_pass passed, $s_fail failed, $s_skip skipped ($(( $(date +%s) - start ))s)"
echo "test cases:"
echo "$c_pass passed, $c_fail failed, $c_skip skipped"
[ "$s_fail" -eq 0 ] && [ "$c_fail" -eq 0 ]
