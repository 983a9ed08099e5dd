#!/bin/sh
# test_example_quickstart.sh - the program that opens <fedc/fedc.h>
# (examples/quickstart.c, built by `make examples` against the staged
# install) runs its 5 rounds, learns, and writes a model that the library
# reads back.
. "$(dirname "$0")/lib.sh"
BUILD=${FEDC_BUILD:-build}
BIN=$BUILD/examples/quickstart
[ -x "$BIN" ] || skip_suite test_example_quickstart "$BIN not built (make examples)"
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
  skip_suite test_example_quickstart "Fashion-MNIST not installed (dataset-fashion-mnist)"

expect 0 "^round 5: 10 clients" "quickstart runs 5 rounds of 10 clients" -- "$BIN" "$T/model.safetensors"
acc=$(sed -n 's/^round 5: .* accuracy \([0-9.]*\)$/\1/p' "$T/out")
if python3 -c "import sys; sys.exit(0 if float('$acc') > 0.70 else 1)" 2>/dev/null; then
  ok "round 5's test accuracy $acc is above 0.70"
else
  bad "round 5's test accuracy '$acc' is not above 0.70"
fi
n=$(grep -c '^round ' "$T/out")
[ "$n" = 5 ] && ok "one line per committed round, from the callback" || bad "$n round lines, want 5"
if python3 tests/tools/check_safetensors.py "$T/model.safetensors" >"$T/st" 2>&1; then
  ok "the saved model is a valid safetensors file"
else
  bad "the saved model: $(head -c 300 "$T/st")"
fi
summary test_example_quickstart
