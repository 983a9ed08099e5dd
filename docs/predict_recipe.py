"""predict_recipe.py - the numpy recipe of docs/predict.md: a fedc model
applied to a CSV file with the preprocessing its metadata records, giving
what fedc-predict gives (tests/integration/schema_tests.py checks that they
agree to 1e-6)."""
import csv
import json
import struct

import numpy as np


def load_model(path):
    """(tensors by name as float64 arrays, metadata dict) of a safetensors file."""
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    tensors = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"]).astype(np.float64)
    return tensors, meta


def read_inputs(csv_path, schema):
    """The model's inputs from a CSV, columns by name: numbers as float32 (as fedc reads
    them), categorical columns one-hot in vocabulary order, a missing value NaN."""
    cat = schema.get("categorical", {})
    missing = ("", "NA", "NaN", "nan")
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    head = [h.strip() for h in rows[0]]
    col = {name: i for i, name in enumerate(head)}
    X = []
    for r in rows[1:]:
        if not any(v.strip() for v in r):
            continue
        x = []
        for name in schema["features"]:
            v = r[col[name]].strip()
            if name in cat:
                x += [np.nan] * len(cat[name]) if v in missing else \
                     [1.0 if v == c else 0.0 for c in cat[name]]
            else:
                x.append(np.nan if v in missing else float(np.float32(float(v))))
        X.append(x)
    return np.array(X, dtype=np.float64)


def predict(model_path, csv_path):
    """{"scores": [N, K] probabilities (sigmoid: P(class 1); identity: the value),
    "labels": predicted classes (regression: the value), "names": the predicted
    classes' labels from the model's class_labels ("B", "M"; as fedc-predict prints)}."""
    t, meta = load_model(model_path)
    schema = json.loads(meta["schema"])
    prep = json.loads(meta["preprocessing"])
    X = read_inputs(csv_path, schema)
    X = (X - np.array(prep["mean"])) / np.array(prep["std"])
    X[np.isnan(X)] = 0.0  # a missing value: the federation's mean
    n_layers = len([k for k in t if k.endswith(".weight")])
    a = X
    for i in range(n_layers):
        a = a @ t[f"layers.{i}.weight"].T + t[f"layers.{i}.bias"]
        if i + 1 < n_layers:
            a = np.maximum(a, 0.0)  # hidden layers: ReLU
    link = meta["link"]
    if link == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-a[:, 0]))
        lab = (p >= 0.5).astype(int)
        names = json.loads(meta.get("class_labels", '["0", "1"]'))
        return {"scores": np.stack([1.0 - p, p], axis=1), "labels": lab,
                "names": [names[k] for k in lab]}
    if link == "softmax":
        e = np.exp(a - a.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        lab = p.argmax(axis=1)
        names = json.loads(meta.get("class_labels", "[]")) or [str(k) for k in range(p.shape[1])]
        return {"scores": p, "labels": lab, "names": [names[k] for k in lab]}
    return {"scores": a, "labels": a[:, 0]}
