"""external_eval_tests.py - an external trainer ([trainer] command and
evaluate) in a job with a schema and federated evaluation, beside a
built-in site, on loopback: the external site's [data] train gives the
statistics phase its share (the federation's rows are both sites'), and its
evaluate command's predictions become its evaluation report (every round's
evaluation has both sites, the federation's n is both sites' held-out
rows, and the site logs "evaluation accepted"). An external site without
[data] train stops at the statistics phase with a message naming that key.
Needs numpy under /usr/bin/python3.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Job, Skip, Suite  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None

PY = "/usr/bin/python3"
TRAINER = os.path.join(harness.ROOT, "tests/integration/trainers/schema_trainer.py")
ROWS = (800, 500)  # site 1 (built-in), site 2 (external)


def write_csv(path, rng, n, cols):
    y = (rng.random(n) < 0.2).astype(int)
    x = rng.normal(size=(n, 4)) + 1.5 * y[:, None] * np.array([1, 0.5, 0, 0])
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for row, lab in zip(x, y):
            v = dict(zip(["a", "b", "c", "d"], row), label=lab)
            f.write(",".join(f"{v[c]:.5f}" if c != "label" else str(v[c]) for c in cols) + "\n")


def test_external_site_in_schema_job():
    if np is None or subprocess.run([PY, "-c", "import numpy"]).returncode:
        raise Skip(f"{PY} has no numpy")
    job = Job("exteval", 2, sizes=[10, 10], rounds=3, model="logreg", poll_s=1,
              clients_per_round=2, min_clients=2)
    try:
        rng = np.random.default_rng(5)
        csvs = [os.path.join(job.dir, f"site-{k}.csv") for k in (1, 2)]
        write_csv(csvs[0], rng, ROWS[0], ["a", "b", "c", "d", "label"])
        write_csv(csvs[1], rng, ROWS[1], ["label", "d", "c", "b", "a"])
        with open(job.coord_ini) as f:
            text = f.read()
        text = text.replace("inputs = 784\nclasses = 10\n", "")
        text += ("features = a,b,c,d\nlabel = label\n"
                 "[eval]\nevery = 1\nselect = pr_auc\ndeadline_s = 20\n")
        with open(job.coord_ini, "w") as f:
            f.write(text)
        job.allow_all()
        job.start_coordinator()
        env = dict(os.environ, PYTHONPATH=os.path.join(harness.ROOT, "python"))
        procs = []
        for k, extra in ((1, f"format = csv\ntrain = {csvs[0]}\nvalidation_split = 0.2\n"),
                         (2, f"format = csv\ntrain = {csvs[1]}\n"
                             f"[trainer]\ncommand = {PY} {TRAINER} --data {csvs[1]}\n"
                             f"evaluate = {PY} {TRAINER} --data {csvs[1]}\n")):
            ini = job.client_ini(k)
            with open(ini) as f:
                t = f.read()
            t = t.replace(t[t.index("[data]\n"):t.index("[client]")], "")
            with open(ini, "w") as f:
                f.write(t + "[data]\ntest =\n" + extra)
            log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
            procs.append(subprocess.Popen([os.path.join(harness.BIN, "fedc-client"), "--config",
                                           ini], stdout=log, stderr=log, env=env))
            job.procs.append(procs[-1])
        job.wait_for(lambda: (job.status() or {}).get("state") == "finished"
                     and len(job.status()["eval"]["rounds"]) == 3, 90,
                     "the job and its evaluations")
        st = job.status()
        assert st["statistics"]["rows"] == sum(ROWS), st["statistics"]
        for r in st["eval"]["rounds"]:
            assert r["sites"] == 2, r
            assert r["samples"] == int(ROWS[0] * 0.2) + int(ROWS[1] * 0.2), r
        log2 = open(os.path.join(job.dir, "client-2.log")).read()
        assert log2.count("evaluation accepted") == 3, log2[-2000:]
        print(f"       PR AUC by round {[round(r['pr_auc'], 3) for r in st['eval']['rounds']]}")

    finally:
        job.close()


def test_external_site_without_data_train():
    if np is None:
        raise Skip("numpy is not installed")
    job = Job("extnodata", 1, sizes=[10], rounds=1, model="logreg", poll_s=1)
    try:
        with open(job.coord_ini) as f:
            text = f.read()
        text = text.replace("inputs = 784\nclasses = 10\n", "") + "features = a,b\nlabel = label\n"
        with open(job.coord_ini, "w") as f:
            f.write(text)
        job.allow_all()
        job.start_coordinator()
        ini = job.client_ini(1)
        with open(ini) as f:
            t = f.read()
        t = t.replace(t[t.index("[data]\n"):t.index("[client]")], "")
        with open(ini, "w") as f:
            f.write(t + f"[data]\ntest =\n[trainer]\ncommand = {PY} {TRAINER} --data x.csv\n")
        r = subprocess.run([os.path.join(harness.BIN, "fedc-client"), "--config", ini],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, "the client went on without statistics"
        assert "[data] train" in r.stderr and "statistics" in r.stderr, r.stderr[-1500:]
    finally:
        job.close()


if __name__ == "__main__":
    suite = Suite("external_eval_tests")
    suite.run(test_external_site_in_schema_job)
    suite.run(test_external_site_without_data_train)
    suite.finish()
