#!/bin/sh
# fedbuff_vs_sync.sh - asynchronous FedBuff against synchronous FedAvg when
# sites differ in speed (docs/strategies.md, FedBuff): Fashion-MNIST,
# softmax, 100 clients, seed 1, client speeds exp(N(0, 1))
# (sim.speed_skew = 1), 10 clients training at a time. fedc-sim's simulated
# clock ("vtime": a client takes rows / speed to train; a synchronous round
# waits for its slowest client, a FedBuff step happens when its buffer_k-th
# update arrives) measures the time to the first test accuracy >= 0.80.
#
# Usage: bench/fedbuff_vs_sync.sh [PARTITIONS]   e.g. "iid dirichlet"
set -eu
BUILD=${FEDC_BUILD:-build}
SIM="$BUILD/bin/fedc-sim"
PARTS=${1:-"iid dirichlet"}

summary() { # LABEL: reads fedc-sim --json on stdin
  python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
final, per = rows[-1], [r for r in rows[:-1] if r.get("test_acc") is not None]
hit = next((r for r in per if r["test_acc"] >= 0.80), None)
t = "%9.0f at %3d" % (hit["vtime"], hit["round"]) if hit else "    never    "
last = per[-1]
print("%-40s time to 0.80 %s   final %.4f after %d (%.0f)"
      % (sys.argv[1], t, final["test_acc"], last["round"], last["vtime"]), flush=True)
' "$1"
}

echo "fedc-sim, Fashion-MNIST softmax, 100 clients, speeds exp(N(0,1)), seed 1"
echo "(time: simulated, rows / speed; 'at': rounds or server steps)"
for part in $PARTS; do
  J="--json --quiet --set sim.speed_skew=1 --set sim.partition=$part --set sim.alpha=0.5"
  echo "== $part"
  "$SIM" $J --set job.rounds=100 | summary "fedavg, 10 per round (synchronous)"
  "$SIM" $J --set job.rounds=300 --set strategy.name=fedbuff --set strategy.buffer_k=10 \
    | summary "fedbuff, buffer_k 10, 10 in flight"
  "$SIM" $J --set job.rounds=300 --set strategy.name=fedbuff --set strategy.buffer_k=5 \
    | summary "fedbuff, buffer_k 5, 10 in flight"
done
