#!/bin/sh
# test_scaffold_external.sh - an external trainer in a SCAFFOLD job: the
# correction it is given and applies, its step count
# (tests/integration/scaffold_external_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_scaffold_external: $BUILD/bin/$b is not built"
    exit 1
  fi
done
# the numpy trainer and the reference need Debian's interpreter (numpy)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
exec "$PY" tests/integration/scaffold_external_tests.py "$@"
