#!/bin/sh
# test_compression.sh - compressed updates (int8, topk) through the real
# coordinator and clients on loopback over mutual TLS: committed models
# equal to the FedAvg of the decoded updates, a restarted top-k client
# keeps its residual (tests/integration/compression_tests.py).
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_compression: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/compression_tests.py "$@"
