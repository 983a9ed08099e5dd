"""make_data.py - the hospital tutorial's data: scikit-learn's breast-cancer
table (Debian's python3-sklearn ships breast_cancer.csv) split into three
hospitals' CSVs of uneven size and different malignancy rates, each with its
columns in its own order and a patient_id column, plus new-patients.csv (a
held-out 20%, never seen by any hospital). Label: malignant = 1.

Usage: /usr/bin/python3 make_data.py OUTDIR
Prints each file's rows and malignancy rate.
"""
import os
import sys

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

out = sys.argv[1]
data = load_breast_cancer()
names = [n.replace(" ", "_") for n in data.feature_names]
X, y = data.data, 1 - data.target          # sklearn: 0 = malignant; here 1 = malignant
ids = np.arange(100000, 100000 + len(y))
Xtr, Xte, ytr, yte, idtr, idte = train_test_split(X, y, ids, test_size=0.2, random_state=0,
                                                  stratify=y)
rng = np.random.default_rng(2026)
pos, neg = list(rng.permutation(np.where(ytr == 1)[0])), list(rng.permutation(np.where(ytr == 0)[0]))
# (malignant, benign) per hospital: a large referral centre with many cancers,
# a mid-sized general hospital, a small screening clinic with few
plan = {"hospital-a": (110, 90), "hospital-b": (40, 130)}
parts = {}
for h, (p, n) in plan.items():
    parts[h] = np.array(pos[:p] + neg[:n])
    pos, neg = pos[p:], neg[n:]
parts["hospital-c"] = np.array(pos + neg)


def write(path, rows, Xs, ys, idx, order):
    cols = ["patient_id"] + [names[j] for j in order] + ["malignant"]
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for i in rows:
            f.write(",".join([str(idx[i])] + [repr(float(Xs[i, j])) for j in order] +
                             [str(int(ys[i]))]) + "\n")


for h, rows in parts.items():
    os.makedirs(os.path.join(out, h), exist_ok=True)
    rows = rng.permutation(rows)
    write(os.path.join(out, h, f"{h}.csv"), rows, Xtr, ytr, idtr, list(rng.permutation(len(names))))
    print(f"{h}: {len(rows)} patients, {ytr[rows].mean() * 100:.1f}% malignant")
write(os.path.join(out, "new-patients.csv"), range(len(yte)), Xte, yte, idte,
      list(rng.permutation(len(names))))
print(f"new-patients: {len(yte)} patients, {yte.mean() * 100:.1f}% malignant (held out)")
