#!/bin/sh
# test_fuzz_replay.sh - every fuzz target over its seed corpus and over
# every crash ever found (tests/fuzz/corpus/<name>, tests/fuzz/crashes/<name>),
# with the replay binaries `make test` builds ($FEDC_BUILD/tests/replay_<name>,
# plain $(CC), under the sanitizers when SANITIZE is set). Builds nothing.
# An input that crashes, trips a sanitizer or breaks a target's invariant
# fails its target; the failing input is named. See docs/fuzzing.md.
set -u
BUILD=${FEDC_BUILD:-build}
. "$(dirname "$0")/lib.sh"
FUZZ=tests/fuzz

targets=$(ls "$FUZZ"/fuzz_*.c 2>/dev/null | sed 's|.*/fuzz_||; s|\.c$||')
[ -n "$targets" ] || { bad "no fuzz targets in $FUZZ"; summary test_fuzz_replay; exit; }

for t in $targets; do
  bin="$BUILD/tests/replay_$t"
  if [ ! -x "$bin" ]; then
    bad "$t: $bin is missing (make test builds it)"
    continue
  fi
  dirs=""
  for d in "$FUZZ/corpus/$t" "$FUZZ/crashes/$t"; do
    [ -d "$d" ] && dirs="$dirs $d"
  done
  if [ -z "$dirs" ]; then
    bad "$t: no corpus and no crashes directory"
    continue
  fi
  # shellcheck disable=SC2086
  if "$bin" $dirs >"$T/out" 2>"$T/err"; then
    ok "$t: $(awk '{n += $2} END {print n}' "$T/out") inputs replayed"
  else
    rc=$?
    # name the input: replay it file by file until one fails
    culprit=""
    for d in $dirs; do
      for f in "$d"/*; do
        [ -f "$f" ] || continue
        if ! "$bin" "$f" >/dev/null 2>&1; then culprit=$f; break 2; fi
      done
    done
    bad "$t: exit $rc${culprit:+ on $culprit}: $(grep -v '^replay:' "$T/err" | head -c 600)"
  fi
done
summary test_fuzz_replay
