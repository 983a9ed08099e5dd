#!/bin/sh
# demo.sh - `make demo`: a real federated training on this machine.
#
# A coordinator and 4 clients on 127.0.0.1 over mutual TLS train softmax
# regression on Fashion-MNIST for 20 rounds, each client on its own shard
# (scripts/demo.py). Set FEDC_DEMO_SIM=1 to also run the simulator on the
# same data with 100 clients.
set -eu
BUILD=${FEDC_BUILD:-build}
export FEDC_BUILD="$BUILD"
python3 scripts/demo.py
if [ "${FEDC_DEMO_SIM:-0}" = 1 ]; then
  echo
  echo "fedc demo: the same task simulated with 100 clients (fedc-sim)"
  "$BUILD/bin/fedc-sim" --config configs/sim-fashion-softmax.ini
fi
