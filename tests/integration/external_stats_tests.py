#!/usr/bin/python3
"""external_stats_tests.py - an external-trainer site in a job with a
schema: fedc-client computes the site's statistics itself from [data]
train read by the job's schema (the library's loader and statistics), so
the site takes part in the statistics phase; its trainer
(tests/integration/trainers/schema_trainer.py) gets the federation's
statistics in FEDC_TASK and standardizes with fedc.standardize. Two sites,
one on the built-in trainer and one external, a logreg job with a numeric
and a categorical column. Checks: the federation's statistics are those of
the pooled tables (rows, label counts, means), the trainer's standardized
inputs are (x - pooled mean) / pooled std, and every round commits with
both sites. Needs numpy under /usr/bin/python3.
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BIN, ROOT, Skip, Suite  # noqa: E402

try:
    import numpy as np
    from schema_tests import SchemaJob
except ImportError:
    np = None

PY = "/usr/bin/python3"
TRAINER = os.path.join(ROOT, "tests/integration/trainers/schema_trainer.py")
ROUNDS = 3


def write_site(path, rng, n, shift, order):
    a = rng.normal(shift, 2.0, n)
    b = rng.normal(10.0, 0.5, n)
    c = rng.choice(["red", "blue", "green"], n)
    y = ((a + (c == "red") * 1.5 + rng.normal(0, 1, n)) > shift).astype(int)
    cols = {"id": np.arange(n), "a": a, "b": b, "c": c, "target": y}
    with open(path, "w") as f:
        f.write(",".join(order) + "\n")
        for i in range(n):
            f.write(",".join(repr(float(cols[k][i])) if k in ("a", "b") else str(cols[k][i])
                             for k in order) + "\n")
    onehot = np.stack([(c == v).astype(float) for v in ("red", "blue", "green")], axis=1)
    x = np.column_stack([a.astype(np.float32).astype(np.float64), onehot,
                         b.astype(np.float32).astype(np.float64)])
    return x, y


def test_external_site_statistics():
    if np is None:
        raise Skip(f"{PY} has no numpy and scikit-learn (apt-get install python3-numpy "
                   "python3-sklearn)")
    tmp = harness.tempfile.mkdtemp(prefix="fedc-xs-")
    rng = np.random.default_rng(11)
    x1, y1 = write_site(os.path.join(tmp, "site-1.csv"), rng, 60, 0.0,
                        ["id", "a", "b", "c", "target"])
    x2, y2 = write_site(os.path.join(tmp, "site-2.csv"), rng, 90, 3.0,
                        ["target", "c", "b", "id", "a"])
    keep = os.path.join(tmp, "keep")
    os.makedirs(keep)
    job = SchemaJob("xs", [os.path.join(tmp, f"site-{k}.csv") for k in (1, 2)],
                    "features = a,c,b\ncategorical = c:red|blue|green\nlabel = target\n"
                    "exclude = id\ntest =\n", "logreg", rounds=ROUNDS,
                    train="epochs = 1\nbatch_size = 16\nlr = 0.1")
    try:
        job.allow_all()
        job.start_coordinator()
        p1 = job.start_client(1)
        ini = job.client_ini(2)
        with open(ini, "a") as f:
            f.write(f"[trainer]\ncommand = PYTHONPATH={ROOT}/python {PY} {TRAINER} "
                    f"--csv {tmp}/site-2.csv --keep {keep}\ntimeout_s = 60\n")
        log = open(os.path.join(job.dir, "client-2.log"), "ab")
        p2 = subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", ini],
                              stdout=log, stderr=log)
        job.procs.append(p2)
        job.wait_for(lambda: (job.status() or {}).get("state") == "finished", 120,
                     "the job to finish")
        assert p1.wait(timeout=30) == 0 and p2.wait(timeout=30) == 0, "a client did not exit 0"
        st = job.status()
        assert st["statistics"]["phase"] == "done", st.get("statistics")
        assert st["statistics"]["rows"] == 150, st["statistics"]
        y = np.concatenate([y1, y2])
        assert st["statistics"]["label_counts"] == [int((y == 0).sum()), int((y == 1).sum())]
        assert [r["clients"] for r in st["rounds"]] == [2] * ROUNDS, st["rounds"]
        with job.db() as con:
            stats = json.loads(con.execute(
                "SELECT value FROM job_texts WHERE name='stats'").fetchone()[0])
        x = np.concatenate([x1, x2])
        mean, std = x.mean(axis=0), x.std(axis=0)
        dm = float(abs(np.array(stats["mean"]) - mean).max())
        assert dm < 1e-9 * (1 + abs(x).max()), f"federation means off by {dm}"
        want = (x2 - mean) / std
        for r in range(1, ROUNDS + 1):
            z = np.load(os.path.join(keep, f"round-{r}.npy"))
            err = float(abs(z - want).max())
            assert err < 1e-5, f"round {r}: the trainer's standardized inputs off by {err}"
        print(f"    2 sites (built-in + external), {ROUNDS} rounds; means off by {dm:.1e}, "
              f"standardized inputs by {err:.1e}", flush=True)
        with open(os.path.join(job.dir, "client-2.log"), errors="replace") as f:
            text = f.read()
        assert 'msg="statistics sent"' in text, text[-1500:]
    finally:
        for p in job.procs:
            if p.poll() is None:
                p.terminate()
        job.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    s = Suite("external_stats")
    s.run(test_external_site_statistics)
    s.finish()
