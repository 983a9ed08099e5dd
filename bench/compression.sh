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
# Knobs (environment): FEDC_BUILD (build), FEDC_BENCH_ROUNDS (100),
# FEDC_BENCH_SCHEMES ("none f16 bf16 int8 topk:0.05 topk:0.1 topk_bf16:0.1 topk_bf16:0.15").
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
