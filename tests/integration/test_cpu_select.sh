#!/bin/sh
# test_cpu_select.sh - the CPU kernel variant as the programs show and take
# it (docs/architecture.md, Compute): --version names the variant in use,
# FEDC_CPU forces one (an unknown or unavailable name is a usage error), and
# for every variant this machine runs, the same seed gives the same model
# file with 1 and 2 threads. A variant the machine cannot run is skipped.
set -u
BUILD=${FEDC_BUILD:-build}
SIM="$BUILD/bin/fedc-sim"
. "$(dirname "$0")/lib.sh"

FAST="--set job.rounds=3 --set sim.clients=20 --set job.clients_per_round=4 --quiet"

expect 0 "^cpu kernels: " "fedc-sim --version names the kernel variant" -- "$SIM" --version
for prog in fedc-coordinator fedc-client; do
  if [ -x "$BUILD/bin/$prog" ]; then
    expect 0 "^cpu kernels: " "$prog --version names the kernel variant" -- "$BUILD/bin/$prog" --version
  else
    skip "$prog --version: $BUILD/bin/$prog is not built"
  fi
done
expect 0 "^cpu kernels: scalar" "FEDC_CPU=scalar forces the scalar kernels" -- \
  env FEDC_CPU=scalar "$SIM" --version
expect 2 "unknown variant \"sse9\"" "FEDC_CPU with an unknown name is a usage error" -- \
  env FEDC_CPU=sse9 "$SIM" --version
case $(uname -m) in
aarch64) missing=avx2 ;;
*) missing=neon ;;
esac
expect 2 "$missing is not available" "FEDC_CPU=$missing is refused on $(uname -m)" -- \
  env FEDC_CPU=$missing "$SIM" --version
if [ -x "$BUILD/bin/fedc-client" ]; then
  env FEDC_CPU=sse9 "$BUILD/bin/fedc-client" --version >"$T/out" 2>&1
  [ $? -ne 0 ] && grep -q "FEDC_CPU" "$T/out" && ok "fedc-client refuses a bad FEDC_CPU" ||
    bad "fedc-client with FEDC_CPU=sse9: $(head -c 200 "$T/out")"
fi

# each variant: the same bits whatever the thread count (softmax and MLP)
for v in scalar avx2 avx512 neon; do
  if ! FEDC_CPU=$v "$SIM" --version >/dev/null 2>&1; then
    skip "$v: this build or this CPU cannot run it"
    continue
  fi
  for model in "--set model.type=softmax" "--set model.type=mlp --set model.hidden=24"; do
    # shellcheck disable=SC2086
    FEDC_CPU=$v "$SIM" $FAST $model --threads 2 --save "$T/$v.2.safetensors" 2>"$T/err" &&
      FEDC_CPU=$v "$SIM" $FAST $model --threads 1 --save "$T/$v.1.safetensors" 2>>"$T/err"
    name="$v, $(echo "$model" | sed 's/.*type=\([a-z]*\).*/\1/')"
    if [ ! -s "$T/$v.1.safetensors" ] || [ ! -s "$T/$v.2.safetensors" ]; then
      bad "$name: a run failed: $(head -c 300 "$T/err")"
    elif cmp -s "$T/$v.1.safetensors" "$T/$v.2.safetensors"; then
      ok "$name: same seed, same model file with 1 and 2 threads"
    else
      bad "$name: 1 and 2 threads gave different models"
    fi
    rm -f "$T/$v.1.safetensors" "$T/$v.2.safetensors"
  done
done

summary test_cpu_select
