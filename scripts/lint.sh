#!/bin/sh
# lint.sh - the checks every change passes (run by `make test`):
# no banned C library calls (unbounded or unchecked: strcpy, strcat,
# sprintf, vsprintf, gets, atoi, atol, atof, strtok, tmpnam) in fedc's own
# C code, and no private key committed.
set -u
cd "$(dirname "$0")/.."
status=0
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|atof|strtok|tmpnam)[[:space:]]*\('
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find shared sim coordinator client tests bench -name '*.[ch]')
# a comment or string that names a banned function is fine: look at code only
hits=$(for f in $files; do
  sed -e 's://.*$::' -e 's:"[^"]*"::g' "$f" | grep -nE "$banned" | sed "s|^|$f:|"
done)
if [ -n "$hits" ]; then
  echo "lint: banned functions (use snprintf, strtol/strtod, memcpy with a bound):"
  echo "$hits"
  status=1
fi
keys=$(git ls-files 2>/dev/null | grep -E '\.key$|\.pem$' || true)
if [ -n "$keys" ]; then
  echo "lint: key or certificate files are committed: $keys"
  status=1
fi
[ "$status" -eq 0 ] && echo "lint: ok"
exit "$status"
