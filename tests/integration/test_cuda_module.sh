#!/bin/sh
# test_cuda_module.sh - CUDA is loaded at run time (docs/cuda.md): no
# program and not libfedc.so links a CUDA library; device = cuda fails with
# one message naming what is missing: the module (where it was looked
# for), a module of another ABI, or the device (the module loads and the
# CUDA runtime finds no GPU). On a machine with a GPU the last case trains
# instead, and passes.
set -u
BUILD=${FEDC_BUILD:-build}
SIM="$BUILD/bin/fedc-sim"
MODULE="$BUILD/lib/fedc/libfedc-cuda.so"
. "$(dirname "$0")/lib.sh"

FAST="--set job.rounds=1 --set sim.clients=20 --set job.clients_per_round=4 --quiet"

# ldd: no CUDA library in any program or in libfedc.so
for f in "$BUILD/bin/fedc-client" "$BUILD/bin/fedc-coordinator" "$BUILD/bin/fedc-sim" \
    "$BUILD/bin/fedc-sim-mpi" "$BUILD/dist/libfedc.so"; do
  [ -e "$f" ] || continue
  if ldd "$f" >"$T/ldd" 2>&1 && ! grep -qi 'cuda\|cublas' "$T/ldd"; then
    ok "ldd $(basename "$f"): no CUDA library"
  else
    bad "ldd $(basename "$f") names CUDA: $(grep -i 'cuda\|cublas' "$T/ldd" | tr '\n' ' ')"
  fi
done

# no module where the program looks: the message names the places
mkdir -p "$T/bin"
cp "$SIM" "$T/bin/fedc-sim"
expect 2 "device = cuda: the CUDA module libfedc-cuda.so is not installed (looked for $T/bin/../lib/fedc/libfedc-cuda.so" \
  "no module beside the program: the message says where it looked" -- \
  env -u FEDC_CUDA_MODULE "$T/bin/fedc-sim" $FAST --set train.device=cuda
expect 2 "the CUDA module libfedc-cuda.so is not installed (looked for /nonexistent/libfedc-cuda.so;" \
  "FEDC_CUDA_MODULE names a missing file: the message says so" -- \
  env FEDC_CUDA_MODULE=/nonexistent/libfedc-cuda.so "$SIM" $FAST --set train.device=cuda
[ "$(grep -c . "$T/err")" = 1 ] && ok "one line of error" || bad "more than one line: $(cat "$T/err")"

# a module of another ABI is refused, not called
if command -v cc >/dev/null 2>&1; then
  cat >"$T/old.c" <<'C'
struct t { unsigned abi, size; };
static const struct t table = {999, sizeof table};
const struct t *fedc_cuda_module_entry(const void *host) { (void)host; return &table; }
C
  if cc -shared -fPIC -o "$T/old.so" "$T/old.c" 2>"$T/cc.err"; then
    expect 2 "the CUDA module $T/old.so was built for another version of fedc (module ABI 999" \
      "a module of another ABI is refused" -- \
      env FEDC_CUDA_MODULE="$T/old.so" "$SIM" $FAST --set train.device=cuda
  else
    bad "cc could not build the stand-in module: $(head -c 200 "$T/cc.err")"
  fi
else
  skip "a module of another ABI: no cc"
fi

# the module built here: it loads; without a GPU it says there is none
if [ ! -e "$MODULE" ]; then
  skip "the CUDA module: not built (no nvcc, or CUDA=0)"
else
  if nm -D --defined-only "$MODULE" | awk '{print $3}' | grep -qvx fedc_cuda_module_entry; then
    bad "the module exports more than fedc_cuda_module_entry: $(nm -D --defined-only "$MODULE" | head -5)"
  else
    ok "the module exports fedc_cuda_module_entry only"
  fi
  ldd "$MODULE" | grep -q libcudart && ok "the module links libcudart" || bad "the module lacks libcudart"
  "$SIM" $FAST --set train.device=cuda >"$T/out" 2>"$T/err"
  rc=$?
  if [ $rc = 0 ]; then
    ok "device = cuda trains on this machine's GPU"
  elif [ $rc = 2 ] && grep -q "device = cuda: no CUDA device is present (cudaGetDeviceCount: " "$T/err"; then
    ok "module loads, no GPU: $(cat "$T/err")"
  else
    bad "device = cuda: exit $rc: $(head -c 300 "$T/err")"
  fi
fi

summary test_cuda_module
