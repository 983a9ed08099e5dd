#!/bin/sh
# test_trainers.sh - external trainers ([trainer] command): a mixed
# federation, trainer failures, a tensor job (tests/integration/trainer_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_trainers: $BUILD/bin/$b is not built"
    exit 1
  fi
done
# the numpy trainer and the tensor-job check need Debian's interpreter (numpy)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
exec "$PY" tests/integration/trainer_tests.py "$@"
