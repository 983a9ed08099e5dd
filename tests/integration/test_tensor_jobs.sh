#!/bin/sh
# test_tensor_jobs.sh - a tensor job ([model] type = tensors: F32, F16,
# BF16 and integer tensors) on a real coordinator, its sites played with
# numpy (tests/integration/tensor_job_tests.py): weighted averages in each
# dtype, refusals naming the tensor, kill -9 and resume bit-identical,
# start-time refusals. numpy comes with Debian's python3-numpy.
BUILD=${FEDC_BUILD:-build}
if [ ! -x "$BUILD/bin/fedc-coordinator" ]; then
  echo "test_tensor_jobs: $BUILD/bin/fedc-coordinator is not built"
  exit 1
fi
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  echo "test_tensor_jobs: skipped: /usr/bin/python3 has no numpy (apt-get install python3-numpy)"
  exit 77
fi
exec /usr/bin/python3 tests/integration/tensor_job_tests.py "$@"
