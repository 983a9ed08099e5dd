"""fedc.tabular - a job with a schema, on the trainer's side.

A job whose coordinator declares a schema ([data] features, label,
categorical, exclude, missing) has a statistics phase before round 1:
fedc-client reads the site's [data] train CSV by the schema and sends its
counts and sums; the coordinator adds them up. From then on the job
object in FEDC_TASK holds "schema" and "stats" (per model input: "mean",
"std", "count", ...; docs/data.md). The built-in trainer standardizes its
inputs with the federation's mean and std, x = (x - mean) / std, a missing
value becoming 0 (the mean). An external trainer does the same with these
helpers, so that every site, built-in or not, trains the same model on
the same scale:

    t = fedc.task()
    x, y = fedc.read_table("/srv/site/train.csv", t)   # the schema's inputs
    x = fedc.standardize(x, t)                         # the federation's scale

read_table maps the CSV's columns by name (any order), one-hot encodes a
categorical column in its vocabulary's order, and reads a missing value
(an empty field, NA, NaN, nan) as NaN; it is plain Python over numpy, for
tables that fit in memory.
"""
import csv

import numpy as np

MISSING = {"", "NA", "NaN", "nan"}  # as fedc-client's loader


def schema(task):
    """The job's schema (dict) or None when the job has none."""
    return task.job.get("schema")


def stats(task):
    """The federation's statistics (dict) or None before the statistics
    phase is over (or for a job without a schema)."""
    return task.job.get("stats")


def input_names(sch):
    """The model inputs in order: a numeric column's name, "col=value" for
    each vocabulary entry of a categorical one."""
    cat = sch.get("categorical") or {}
    out = []
    for c in sch["features"]:
        out += [f"{c}={v}" for v in cat[c]] if c in cat else [c]
    return out


def read_table(path, task):
    """The CSV at path read by the job's schema: x (float64 [N, d], NaN for
    a missing value) and y (float64 [N]; NaN when the table has no label
    column)."""
    sch = schema(task)
    if sch is None:
        raise ValueError("the job has no schema: read the data your own way")
    cat = sch.get("categorical") or {}
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty")
    head = [h.strip() for h in rows[0]]
    idx = {h: i for i, h in enumerate(head)}
    for c in sch["features"]:
        if c not in idx:
            raise ValueError(f"{path}: no column {c!r} of the schema")
    lab = idx.get(sch.get("label", ""))
    d = len(input_names(sch))
    x = np.zeros((len(rows) - 1, d))
    y = np.full(len(rows) - 1, np.nan)
    for r, row in enumerate(rows[1:]):
        j = 0
        for c in sch["features"]:
            v = row[idx[c]].strip()
            if c in cat:
                voc = cat[c]
                if v in MISSING:
                    x[r, j:j + len(voc)] = np.nan
                elif v in voc:
                    x[r, j + voc.index(v)] = 1.0
                else:
                    raise ValueError(f"{path}:{r + 2}: {c}={v!r} is not in its vocabulary")
                j += len(voc)
            else:
                x[r, j] = np.nan if v in MISSING else float(v)
                j += 1
        if lab is not None:
            y[r] = float(row[lab])
    return x, y


def standardize(x, task):
    """x ([N, d], the schema's inputs in order) on the federation's scale:
    (x - mean) / std with the job's statistics, a missing value (NaN)
    becoming 0, the mean: what the built-in trainer does. Raises
    ValueError when the job has no statistics yet or d differs."""
    st = stats(task)
    if st is None:
        raise ValueError("the job has no statistics (no schema, or its statistics phase "
                         "is not over)")
    mean = np.asarray(st["mean"], dtype=np.float64)
    std = np.asarray(st["std"], dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != mean.shape[0]:
        raise ValueError(f"x has shape {x.shape}; the job's schema has {mean.shape[0]} inputs")
    z = (x - mean) / std
    z[np.isnan(z)] = 0.0
    return z
