#!/bin/sh
# test_agg_device.sh - [strategy] device in fedc-sim (docs/cuda.md): with
# device = auto it starts on every machine, aggregating on the GPU where
# there is one and otherwise on the CPU with exactly one log line saying
# why, and its rounds give the same models as device = cpu (FedAvg on the
# GPU is bit-identical, so the printed figures match too); device = cuda
# without a GPU is refused at start (exit 2) with one message; a strategy
# with no GPU form is refused with device = cuda at config time, naming
# the key. The coordinator's side is agg_device_coord_tests.py.
set -u
BUILD=${FEDC_BUILD:-build}
SIM="$BUILD/bin/fedc-sim"
. "$(dirname "$0")/lib.sh"

FAST="--set job.rounds=2 --set sim.clients=20 --set job.clients_per_round=4 --quiet --json"
FALLBACK="\[strategy\] device = auto: aggregating on the CPU"

# what a final JSON line says, less its timings
figures() { grep '"final"' "$1" | sed 's/"secs":[^,]*,//; s/"sec_per_round":[^,]*,//; s/"setup_secs":[^,]*,//; s/"peak_rss_mb":[^,]*,//; s/"phase_secs":{[^}]*},//; s/"cpu_sec_per_round":[^,]*,//'; }

expect 0 "" "fedc-sim runs with device = cpu" -- "$SIM" $FAST
cp "$T/out" "$T/cpu.json"
for s in fedavg median; do
  expect 0 "" "fedc-sim starts with device = auto ($s)" -- "$SIM" $FAST --set strategy.name=$s --set strategy.device=auto
  cp "$T/out" "$T/auto.json"
  if grep -q "device=cuda msg=\"aggregating on the GPU\"" "$T/err"; then
    GPU=1
    ok "auto ($s): on the GPU"
  else
    GPU=0
    n=$(grep -c "$FALLBACK" "$T/err")
    [ "$n" = 1 ] && ok "auto ($s): one log line says it fell back to the CPU" \
      || bad "auto ($s): $n fallback lines: $(head -c 400 "$T/err")"
    grep "$FALLBACK" "$T/err" | grep -q 'reason="agg_cuda: ' && ok "auto ($s): the line says why" \
      || bad "auto ($s): no reason: $(head -c 400 "$T/err")"
  fi
  if [ "$s" = fedavg ]; then
    [ "$(figures "$T/cpu.json")" = "$(figures "$T/auto.json")" ] && ok "auto: the same figures as cpu" \
      || bad "auto: figures differ: $(figures "$T/cpu.json") / $(figures "$T/auto.json")"
  fi
done

if [ "$GPU" = 0 ]; then
  expect 2 "\[strategy\] device = cuda: agg_cuda: " \
    "device = cuda without a GPU is refused at start" -- "$SIM" $FAST --set strategy.device=cuda
  [ "$(grep -c . "$T/err")" = 1 ] && ok "the refusal is one line" || bad "refusal: $(cat "$T/err")"
  grep -q '"round"' "$T/out" && bad "device = cuda without a GPU ran a round" || ok "no round ran"
else
  expect 0 "" "device = cuda on the GPU" -- "$SIM" $FAST --set strategy.device=cuda
  [ "$(figures "$T/cpu.json")" = "$(figures "$T/out")" ] && ok "cuda: the same figures as cpu" \
    || bad "cuda: figures differ: $(figures "$T/cpu.json") / $(figures "$T/out")"
fi
expect 2 "\[strategy\] device = cuda: strategy krum has no GPU form" \
  "krum with device = cuda is refused at config time" -- "$SIM" $FAST --set strategy.name=krum --set strategy.device=cuda
expect 2 "\[strategy\] device = gpu: must be one of cpu, cuda, auto" \
  "an unknown device is refused" -- "$SIM" $FAST --set strategy.device=gpu

summary test_agg_device
