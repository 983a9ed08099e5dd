#!/bin/sh
# test_man.sh - the man pages `make install` installs (man/*.[158] by hand,
# fedc.conf.5 generated from the config key table): groff reads each with
# every warning on (-ww) and says nothing, man -l renders it, each program's
# page lists the options its --help lists, and fedc.conf(5) has every key
# that `fedc-sim --config-doc` prints.
set -u
BUILD=${FEDC_BUILD:-build}
. "$(dirname "$0")/lib.sh"

command -v groff >/dev/null 2>&1 || skip_suite test_man "groff is not installed (apt-get install groff)"
[ -e "$BUILD/man/fedc.conf.5" ] || make --no-print-directory BUILD="$BUILD" man >/dev/null 2>&1
PAGES="man/fedc-coordinator.8 man/fedc-client.1 man/fedc-predict.1 man/fedc-sim.1 man/fedc-sim-mpi.1 $BUILD/man/fedc.conf.5"
for p in $PAGES; do
  if [ ! -e "$p" ]; then bad "$p: missing"; continue; fi
  LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$p" >"$T/groff" 2>&1
  if [ -s "$T/groff" ]; then bad "$p: groff warns: $(head -c 300 "$T/groff")"; else ok "$p: groff -man -ww, no warning"; fi
  if command -v man >/dev/null 2>&1; then
    MANWIDTH=80 man --warnings -l "$p" >"$T/page" 2>"$T/manerr"
    if [ -s "$T/manerr" ] || [ ! -s "$T/page" ]; then
      bad "$p: man -l: $(head -c 300 "$T/manerr")"
    else
      ok "$p: man -l renders it"
    fi
  fi
done

# every long option of --help is in the program's page
for pr in fedc-coordinator:8 fedc-client:1 fedc-predict:1 fedc-sim:1; do
  name=${pr%:*} sec=${pr#*:}
  "$BUILD/bin/$name" --help >"$T/help" 2>&1
  missing=""
  for o in $(grep -o -- '--[a-z][a-z-]*' "$T/help" | sort -u); do
    MANWIDTH=200 man -l "man/$name.$sec" 2>/dev/null | grep -q -- "$o" || missing="$missing $o"
  done
  [ -z "$missing" ] && ok "$name.$sec lists every option of --help" || bad "$name.$sec lacks:$missing"
done

# fedc.conf(5): every key of the table
"$BUILD/bin/fedc-sim" --config-doc >"$T/doc"
MANWIDTH=200 man -l "$BUILD/man/fedc.conf.5" >"$T/conf" 2>/dev/null
missing=""
n=0
for k in $(sed -n 's/^| `\([a-z_]*\)\.\([a-z_0-9]*\)`.*/\1.\2/p' "$T/doc"); do
  n=$((n + 1))
  grep -q "^ *${k#*.} (" "$T/conf" || missing="$missing $k"
done
[ "$n" -gt 50 ] && [ -z "$missing" ] && ok "fedc.conf.5 has all $n keys" || bad "fedc.conf.5: $n keys, missing:$missing"

summary test_man
