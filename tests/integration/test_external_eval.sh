#!/bin/sh
# test_external_eval.sh - federated evaluation by external trainers: the
# evaluate command's predictions made into the evaluation report by
# fedc-client and merged by the coordinator, against a recomputation in
# numpy (tests/integration/external_eval_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_external_eval: $BUILD/bin/$b is not built"
    exit 1
  fi
done
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || {
  echo "test_external_eval: skipped: Fashion-MNIST not installed (dataset-fashion-mnist)"
  exit 77
}
# numpy is Debian's (python3-numpy)
exec /usr/bin/python3 tests/integration/external_eval_tests.py "$@"
