#!/bin/sh
# strategies.sh - the strategy, robustness and privacy experiments
# (docs/strategies.md, docs/privacy.md): Fashion-MNIST, softmax regression,
# 100 clients, 10 per round, 100 rounds, seed 1. Prints one line per run.
#
#   1. dirichlet alpha = 0.1: rounds to reach 0.78 test accuracy, FedAvg
#      against FedAdam and FedYogi (server_lr 0.01, tau 1e-3)
#   2. 20% of clients sign-flipping with scale 10: final accuracy of FedAvg,
#      median, trimmed mean, Krum and Multi-Krum against the clean run
#   3. DP-FedAvg with z = 1.0: epsilon at delta = 1e-5 after 100 rounds and
#      the accuracy lost against the same run without DP
set -eu
BUILD=${FEDC_BUILD:-build}
SIM="$BUILD/bin/fedc-sim"
PY=python3

summary() { # LABEL: reads fedc-sim --json on stdin
  $PY -c '
import json, sys
label = sys.argv[1]
rows = [json.loads(l) for l in sys.stdin]
final = rows[-1]
reach = next((r["round"] for r in rows[:-1] if (r.get("test_acc") or 0) >= 0.78), None)
eps = final.get("epsilon")
acc, delta = final["test_acc"], final.get("delta")
print(f"{label:<44} acc {acc:.4f}  reach0.78 {str(reach):>4}" +
      (f"  epsilon {eps:.3f} (delta {delta:g})" if eps is not None else ""))
' "$1"
}

echo "== 1. server optimizers on skewed data (dirichlet alpha = 0.1)"
D="--json --set sim.partition=dirichlet --set sim.alpha=0.1"
"$SIM" $D | summary "fedavg"
"$SIM" $D --set strategy.name=fedadam --set strategy.server_lr=0.01 | summary "fedadam (server_lr 0.01)"
"$SIM" $D --set strategy.name=fedyogi --set strategy.server_lr=0.01 | summary "fedyogi (server_lr 0.01)"

echo "== 2. 20% of clients sign-flip with scale 10 (iid)"
A="--json --set sim.attack=sign_flip --set sim.attack_fraction=0.2 --set sim.attack_scale=10"
"$SIM" --json | summary "clean fedavg"
"$SIM" $A | summary "attacked fedavg"
"$SIM" $A --set strategy.name=median | summary "attacked median"
"$SIM" $A --set strategy.name=trimmed_mean --set strategy.trim_beta=0.2 | summary "attacked trimmed_mean (beta 0.2)"
"$SIM" $A --set strategy.name=trimmed_mean --set strategy.trim_beta=0.3 | summary "attacked trimmed_mean (beta 0.3)"
"$SIM" $A --set strategy.name=krum --set strategy.krum_f=2 | summary "attacked krum (f 2)"
"$SIM" $A --set strategy.name=multikrum --set strategy.krum_f=2 | summary "attacked multikrum (f 2)"

echo "== 3. DP-FedAvg, z = 1.0, 10 of 100 clients per round (q = 0.1)"
"$SIM" --json | summary "no DP"
for clip in 0.1 0.2 0.5; do
  "$SIM" --json --set privacy.noise_multiplier=1.0 --set privacy.clip_norm=$clip | summary "DP z 1.0, clip_norm $clip"
done

echo "== 4. FedBuff (asynchronous), buffer_k 10, client speeds exp(N(0, 1))"
"$SIM" --json --set strategy.name=fedbuff --set strategy.buffer_k=10 --set sim.speed_skew=1.0 | summary "fedbuff (100 server steps)"
