#!/bin/sh
# test_python_pkg.sh - unit tests of the Python package python/fedc
# (tests/python/test_fedc_package.py) under Debian's /usr/bin/python3 with
# numpy: its safetensors reader and writer, a round trip through libfedc.so,
# the task helpers. Skipped (77) when that interpreter has no numpy.
PY=/usr/bin/python3
if ! "$PY" -c "import numpy" 2>/dev/null; then
  echo "test_python_pkg: skipped: $PY has no numpy (apt-get install python3-numpy)"
  exit 77
fi
FEDC_BUILD=${FEDC_BUILD:-build} exec "$PY" tests/python/test_fedc_package.py -v 2>&1
