#!/bin/sh
# demo.sh - `make demo`: a real federated training on Fashion-MNIST.
#
# Simulates 100 clients on this machine, 10 per round, 100 rounds of FedAvg:
# first softmax regression, then a 784-200-200-10 MLP. Progress shows on the
# terminal; the final accuracy and the saved model's path are printed.
set -eu
BUILD=${FEDC_BUILD:-build}
SIM="$BUILD/bin/fedc-sim"
OUT=${FEDC_DEMO_DIR:-build/demo}
mkdir -p "$OUT"

echo "fedc demo: federated softmax regression, Fashion-MNIST, 100 clients (10 per round)"
"$SIM" --config configs/sim-fashion-softmax.ini --save "$OUT/softmax.safetensors"
echo
echo "fedc demo: federated MLP 784-200-200-10, same federation"
"$SIM" --config configs/sim-fashion-mlp.ini --save "$OUT/mlp.safetensors"
echo
echo "fedc demo: final models saved as safetensors in $OUT/"
echo "  load them in Python: safetensors.torch.load_file('$OUT/mlp.safetensors')"
