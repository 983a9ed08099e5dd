"""compare.py - the hospital tutorial's last step: the federated models'
ROC AUC and accuracy on the held-out new patients against centralized
scikit-learn models trained on the three hospitals' data pooled (what no
hospital may do), and the checks the page promises.

Usage: /usr/bin/python3 compare.py WORKDIR   (exit 1 if a check fails)
"""
import json
import os
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

w = sys.argv[1]
# Job 1 (central DP, z = 1, 15 rounds) is printed, not checked: its ROC AUC on
# the new patients varies from run to run (docs/tutorials/hospital-network.md,
# step 10). Job 2 (secure aggregation, DP at the sites, z = 0.8, 5 rounds) is
# checked against a lower floor than the jobs without DP.
DP_FLOOR = 0.90


def table(path):
    with open(path) as f:
        head = f.readline().strip().split(",")
        rows = [line.strip().split(",") for line in f if line.strip()]
    return head, np.array([[float(v) for v in r] for r in rows])


def features(head, m, names):
    return m[:, [head.index(n) for n in names]]


h0, _ = table(os.path.join(w, "hospital-a", "hospital-a.csv"))
names = [n for n in h0 if n not in ("patient_id", "malignant")]
Xs, ys = [], []
for h in ("hospital-a", "hospital-b", "hospital-c"):
    head, m = table(os.path.join(w, h, f"{h}.csv"))
    Xs.append(features(head, m, names))
    ys.append(m[:, head.index("malignant")])
X, y = np.vstack(Xs), np.concatenate(ys)
head, m = table(os.path.join(w, "new-patients.csv"))
Xn, yn = features(head, m, names), m[:, head.index("malignant")]
sc = StandardScaler().fit(X)
central = {
    "logreg": LogisticRegression(max_iter=5000).fit(sc.transform(X), y),
    "mlp": MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=0).fit(
        sc.transform(X), y),
}


def federated(path):
    head, p = table(path)
    score = p[:, 0] if len(head) == 2 else p[:, 1]  # P(malignant): logreg "score", mlp class 1
    return roc_auc_score(yn, score), accuracy_score(yn, p[:, head.index("label")])


fails = 0
fed = {}
print(f"{'model':12} {'federated AUC':>14} {'centralized AUC':>16} {'fed acc':>8} {'central acc':>12}")
for kind in ("logreg-dp", "logreg-sa-dp", "mlp"):
    fa, facc = fed[kind] = federated(os.path.join(w, f"{kind}-pred.csv"))
    pc = central[kind.split("-")[0]].predict_proba(sc.transform(Xn))[:, 1]
    ca, cacc = roc_auc_score(yn, pc), accuracy_score(yn, pc >= 0.5)
    print(f"{kind:12} {fa:14.4f} {ca:16.4f} {facc:8.4f} {cacc:12.4f}   (AUC difference {fa - ca:+.4f})")
    if kind == "logreg-dp":
        continue
    if kind == "logreg-sa-dp":
        if fa < DP_FLOOR:
            print(f"FAILED: {kind}: federated AUC {fa:.4f} < {DP_FLOOR}")
            fails += 1
        continue
    if fa < 0.97:
        print(f"FAILED: {kind}: federated AUC {fa:.4f} < 0.97")
        fails += 1
    if ca - fa > 0.02:
        print(f"FAILED: {kind}: federated AUC {fa:.4f} more than 0.02 below centralized {ca:.4f}")
        fails += 1
st = json.load(open(os.path.join(w, "status1.json")))
ev = st.get("eval") or {}
best = ev.get("best") if isinstance(ev, dict) else None
print("federated evaluation (job 1, DP, the sites' held-out rows):",
      json.dumps(best if best is not None else ev)[:300])
sys.exit(1 if fails else 0)
