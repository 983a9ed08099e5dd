#!/bin/sh
# test_schema.sh - a job with a schema end to end: statistics phase, the
# federation's standardization, fedc-predict and the docs' numpy recipe,
# bad-schema refusals (tests/integration/schema_tests.py). Needs numpy and
# scikit-learn under /usr/bin/python3 (scripts/install-deps.sh).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client fedc-predict; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_schema: $BUILD/bin/$b is not built"
    exit 1
  fi
done
if ! /usr/bin/python3 -c 'import numpy, sklearn' 2>/dev/null; then
  echo "test_schema: skip: numpy and scikit-learn are not importable by /usr/bin/python3"
  exit 77
fi
exec /usr/bin/python3 tests/integration/schema_tests.py "$@"
