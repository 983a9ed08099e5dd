#!/bin/sh
# compression.sh - bytes up and test accuracy at round 100 for each update
# codec ([strategy] compression, docs/compression.md) on the Fashion-MNIST
# MLP, against float32.
#
# The job is configs/sim-fashion-mlp.ini: a 784-200-200-10 ReLU MLP
# (199,210 weights), 100 clients iid, 10 a round, 1 local epoch of batch 32
# at lr 0.1, seed 1, 100 rounds, the test set evaluated after the last.
# fedc-sim runs each update through the same encode and decode as a client
# and the coordinator (wire/coded_update.c) and counts the bodies' bytes;
# float32 is the safetensors update a client sends without compression.
# Targets (issue 17): >= 8x fewer bytes up, <= 0.5 points of accuracy lost.
#
#
# Then bytes down: the global model sent whole or as a lossless delta from
# the previous round's ([server] model_deltas, wire/model_delta.h), for the
# models after rounds 1, 2, 3 and ROUNDS-1, ROUNDS of the same job (float32
# updates), measured by fedc-bench-delta (make build/bin/fedc-bench-delta;
# skipped when it is not built), with Python's zlib as a reference figure.
#
# Knobs (environment): FEDC_BUILD (build), FEDC_BENCH_ROUNDS (100),
# FEDC_BENCH_SCHEMES ("none f16 bf16 int8 topk:0.05 topk:0.1 topk_bf16:0.1 topk_bf16:0.15"),
# FEDC_BENCH_DELTA (1; 0 skips the bytes down).
set -eu

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${FEDC_BUILD:-$ROOT/build}
SIM=$BUILD/bin/fedc-sim
ROUNDS=${FEDC_BENCH_ROUNDS:-100}
SCHEMES=${FEDC_BENCH_SCHEMES:-"none f16 bf16 int8 topk:0.05 topk:0.1 topk_bf16:0.1 topk_bf16:0.15"}
PY=/usr/bin/python3
[ -x "$SIM" ] || { echo "compression: $SIM not found; make all first" >&2; exit 1; }
[ -x "$PY" ] || PY=python3

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for s in $SCHEMES; do
  codec=${s%%:*}
  frac=0.05
  [ "$codec" != "$s" ] && frac=${s#*:}
  nice "$SIM" --config "$ROOT/configs/sim-fashion-mlp.ini" --json --quiet \
    --set job.rounds="$ROUNDS" --set sim.eval_every="$ROUNDS" \
    --set strategy.compression="$codec" --set strategy.topk_fraction="$frac" |
    tail -1 | sed "s/^/$s /" >>"$OUT/runs"
done

"$PY" - "$OUT/runs" "$ROUNDS" <<'PYEOF'
import json, sys
rows = []
for line in open(sys.argv[1]):
    name, js = line.split(" ", 1)
    rows.append((name, json.loads(js)))
base = dict(rows).get("none")
print(f"Fashion-MNIST MLP, 10 clients a round, round {sys.argv[2]} (fedc-sim, 1 run each)")
print(f"{'scheme':<15} {'bytes/update':>12} {'bytes up/round':>14} {'x fewer':>8} "
      f"{'test acc':>9} {'vs f32':>7}  targets (>=8x, <=0.5 pt)")
for name, r in rows:
    per = r["bytes_up_per_update"]
    f32 = r["float32_bytes_per_update"]
    ratio = f32 / per
    acc = r["test_acc"]
    d = (acc - base["test_acc"]) * 100 if base else float("nan")
    met = "(float32)" if name == "none" else "met" if ratio >= 8 and d >= -0.5 else "not met"
    print(f"{name:<15} {per:>12.0f} {per * 10:>14.0f} {ratio:>8.1f} {acc:>9.4f} {d:>+7.2f}  {met}")
PYEOF

# ---- bytes down: whole models against deltas --------------------------------
DELTA=$BUILD/bin/fedc-bench-delta
[ "${FEDC_BENCH_DELTA:-1}" = 1 ] || exit 0
if [ ! -x "$DELTA" ]; then
  echo "bytes down: skipped ($DELTA not built: make build/bin/fedc-bench-delta)"
  exit 0
fi
for r in 1 2 3 $((ROUNDS - 1)) $ROUNDS; do
  nice "$SIM" --config "$ROOT/configs/sim-fashion-mlp.ini" --quiet \
    --set job.rounds="$r" --set sim.eval_every=100000 --save "$OUT/round-$r" >/dev/null
done
echo
echo "Bytes down per client download, float32 job, seed 1 (fedc-bench-delta; median of 5 for the times)"
(cd "$OUT" && "$DELTA" round-1 round-2 round-3 &&
  "$DELTA" round-$((ROUNDS - 1)) round-$ROUNDS | tail -1) | tee "$OUT/delta"
"$PY" - "$OUT" "$ROUNDS" <<'PYEOF'
import os, struct, sys, zlib
out, rounds = sys.argv[1], int(sys.argv[2])
def load(r):
    b = open(os.path.join(out, f"round-{r}"), "rb").read()
    return b, 8 + struct.unpack_from("<Q", b)[0]
print()
print("reference (Python zlib level 9, not used by fedc):")
for a, b in ((1, 2), (2, 3), (rounds - 1, rounds)):
    (x, hx), (y, hy) = load(a), load(b)
    n = (len(y) - hy) // 4
    xs, ys = struct.unpack_from(f"<{n}I", x, hx), struct.unpack_from(f"<{n}I", y, hy)
    z = bytearray()
    planes = [bytearray() for _ in range(4)]
    for u, v in zip(xs, ys):
        d = (v - u) & 0xFFFFFFFF
        zz = ((d << 1) ^ (0xFFFFFFFF if d >> 31 else 0)) & 0xFFFFFFFF
        for p in range(4):
            planes[p].append(zz >> (8 * p) & 0xFF)
    print(f"  round {a} -> {b}: whole model {len(zlib.compress(y, 9))} bytes, "
          f"zig-zag differences in byte planes {len(zlib.compress(b''.join(planes), 9))} bytes "
          f"(of {len(y)})")
print()
print("bytes down per round, 10 clients a round (a client gets a delta only when it holds")
print("the previous round's model, i.e. it took part in it; drawn 10 of 100, ~1 in 10 does)")
print(f"{'round':>7} {'deltas off':>11} {'every client holds r-1':>23} {'10 of 100 drawn':>16}")
for line in open(os.path.join(out, "delta")):
    f = line.split()
    if len(f) < 7 or not f[0].startswith("round-"):
        continue
    whole, delta = int(f[3]), int(f[4])
    r = f[2].split("-")[1]
    print(f"{r:>7} {10 * whole:>11} {10 * delta:>23} {int(9 * whole + delta):>16}")
PYEOF
