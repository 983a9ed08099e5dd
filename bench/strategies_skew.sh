#!/bin/sh
# strategies_skew.sh - strategies against client drift on label-skewed data
# (docs/strategies.md, SCAFFOLD): Fashion-MNIST, 100 clients, 10 per round,
# 100 rounds, seed 1, partitions Dirichlet alpha = 0.1 and 0.5, softmax
# regression (train.lr 0.05) and the 784-200-200-10 MLP of
# configs/sim-fashion-mlp.ini (train.lr 0.1). One line per run: final and
# best test accuracy, and the first round reaching 0.80.
#
#   fedavg     the sample-weighted mean
#   fedprox    fedavg with train.prox_mu = 0.1
#   fedavgm    server momentum 0.9, server_lr 1
#   scaffold   control variates (option II), server_lr 1
#
# The local schedule and SCAFFOLD's global step size come from the
# environment, the same for every strategy of a model (defaults: the
# configs' lr, one epoch, server_lr 1):
#   MLP_LR, MLP_EPOCHS, SOFTMAX_LR, SOFTMAX_EPOCHS, SCAFFOLD_SLR,
#   STRATEGIES (a subset of "fedavg fedprox fedavgm scaffold")
# The MLP figures of docs/strategies.md for Dir(0.1):
#   MLP_LR=0.02 MLP_EPOCHS=5 SCAFFOLD_SLR=0.5 bench/strategies_skew.sh 0.1 mlp
#
# Usage: bench/strategies_skew.sh [ALPHAS] [MODELS]   e.g. "0.1" "softmax mlp"
set -eu
BUILD=${FEDC_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIM="$BUILD/bin/fedc-sim"
ALPHAS=${1:-"0.1 0.5"}
MODELS=${2:-"softmax mlp"}
ROUNDS=${ROUNDS:-100}
MLP_LR=${MLP_LR:-0.1}
MLP_EPOCHS=${MLP_EPOCHS:-1}
SOFTMAX_LR=${SOFTMAX_LR:-0.05}
SOFTMAX_EPOCHS=${SOFTMAX_EPOCHS:-1}
SCAFFOLD_SLR=${SCAFFOLD_SLR:-1}
STRATEGIES=${STRATEGIES:-"fedavg fedprox fedavgm scaffold"}

summary() { # LABEL: reads fedc-sim --json on stdin
  python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
final, per = rows[-1], [r for r in rows[:-1] if r.get("test_acc") is not None]
best = max(per, key=lambda r: r["test_acc"])
reach = next((r["round"] for r in per if r["test_acc"] >= 0.80), None)
fa, ba, br, secs = final["test_acc"], best["test_acc"], best["round"], final["secs"]
print(f"{sys.argv[1]:<34} final {fa:.4f}  best {ba:.4f} (round {br:>3})  "
      f"reach0.80 {str(reach):>4}  {secs:.1f}s", flush=True)
' "$1"
}

echo "fedc-sim, Fashion-MNIST, 100 clients, 10 per round, $ROUNDS rounds, seed 1"
for alpha in $ALPHAS; do
  for model in $MODELS; do
    if [ "$model" = mlp ]; then
      base="--config $ROOT/configs/sim-fashion-mlp.ini"; lr=$MLP_LR; ep=$MLP_EPOCHS
    else base=""; lr=$SOFTMAX_LR; ep=$SOFTMAX_EPOCHS; fi
    J="$base --json --quiet --set job.rounds=$ROUNDS --set sim.partition=dirichlet --set sim.alpha=$alpha"
    J="$J --set train.lr=$lr --set train.epochs=$ep"
    echo "== Dir($alpha), $model, lr $lr, $ep local epoch(s)"
    for st in $STRATEGIES; do
      case $st in
        fedavg) "$SIM" $J | summary "fedavg" ;;
        fedprox) "$SIM" $J --set train.prox_mu=0.1 | summary "fedprox (mu 0.1)" ;;
        fedavgm) "$SIM" $J --set strategy.name=fedavgm | summary "fedavgm (momentum 0.9)" ;;
        scaffold) "$SIM" $J --set strategy.name=scaffold --set strategy.server_lr=$SCAFFOLD_SLR |
            summary "scaffold (server_lr $SCAFFOLD_SLR)" ;;
        *) echo "unknown strategy $st" >&2; exit 2 ;;
      esac
    done
  done
done
