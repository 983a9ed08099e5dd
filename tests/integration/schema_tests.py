"""schema_tests.py - a job with a schema, end to end on loopback (issue:
federated data preparation): the statistics phase, the federation's
standardization at every site, models that describe themselves, fedc-predict
and the numpy recipe of docs/predict.md, and every bad-schema refusal.

Data: scikit-learn's breast-cancer and diabetes tables (Debian's
python3-sklearn), split over 3 sites unevenly and label-skewed, each site's
CSV with its columns in its own order plus an id column. Needs
/usr/bin/python3 with numpy and scikit-learn (run by test_schema.sh).
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BIN, ROOT, Job, Skip, Suite  # noqa: E402

try:
    import numpy as np
    from sklearn.datasets import load_breast_cancer, load_diabetes
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
except ImportError as e:  # reported as skipped, never passed
    np = None
    IMPORT_ERROR = str(e)

sys.path.insert(0, os.path.join(ROOT, "docs"))

FIGURES = {}


def write_csv(path, names, X, y, label, order, ids):
    """A site's CSV: an id column first, the features in `order`, the label last."""
    cols = ["id"] + [names[j] for j in order] + [label]
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for i in range(X.shape[0]):
            vals = [str(ids[i])] + [repr(float(X[i, j])) for j in order] + [repr(float(y[i])) if label == "target" and y.dtype.kind == "f" else str(int(y[i]))]
            f.write(",".join(vals) + "\n")


class SchemaJob(Job):
    """A Job whose coordinator and clients use CSV tables and a schema."""

    def __init__(self, name, sites, coord_data, model, rounds=30, extra_model="", train="",
                 extra_client="", **kw):
        self.sites = sites  # csv path per site (1-based k -> sites[k-1])
        self.coord_data = coord_data
        self.model = model
        self.extra_model = extra_model
        self.train_cfg = train
        self.extra_client = extra_client
        super().__init__(name, len(sites), sizes=[1] * len(sites), rounds=rounds, **kw)

    def write_coordinator_config(self):
        c = self.cfg
        self.coord_ini = os.path.join(self.dir, "coordinator.ini")
        with open(self.coord_ini, "w") as f:
            f.write(f"""[job]
rounds = {c['rounds']}
clients_per_round = {c['clients_per_round']}
min_clients = {c['min_clients']}
round_timeout_s = {c['round_timeout_s']}
seed = 7
[model]
type = {self.model}
{self.extra_model}
[train]
{self.train_cfg}
[server]
listen = 127.0.0.1:{self.port}
status_listen = 127.0.0.1:{self.status_port}
enroll = {c['enroll']}
poll_s = {c['poll_s']}
over_select = 1.0
idle_timeout_s = 10
[tls]
ca = {self.pki('ca.pem')}
cert = {self.pki('server.pem')}
key = {self.pki('server.key')}
[store]
path = {self.store}
[data]
{self.coord_data}
""")

    def client_ini(self, k, cert=None, keep=True):
        path = os.path.join(self.dir, f"client-{k}.ini")
        cert = cert or f"client-{k}"
        with open(path, "w") as f:
            f.write(f"""[server]
url = https://127.0.0.1:{self.port}
[tls]
ca = {self.pki('ca.pem')}
cert = {self.pki(cert + '.pem')}
key = {self.pki(cert + '.key')}
[data]
format = csv
train = {self.sites[k - 1]}
test =
label = target
{self.extra_client}
[client]
name = site-{k}
backoff_max_s = 1
give_up_s = 60
""")
        return path

    def run_all(self, timeout=240):
        self.allow_all()
        self.start_coordinator()
        clients = [self.start_client(k) for k in range(1, self.n + 1)]
        self.wait_for(lambda: self.status() and self.status().get("state") == "finished", timeout,
                      "the job to finish")
        for p in clients:
            p.wait(timeout=30)
        return clients

    def log(self, name):
        with open(os.path.join(self.dir, name), errors="replace") as f:
            return f.read()


def need_sklearn():
    if np is None:
        raise Skip(f"numpy / scikit-learn not importable: {IMPORT_ERROR}")


def split_sites(y, rng, plan):
    """Indices of each site: plan = [(n_class0, n_class1), ...], the last takes the rest."""
    i0 = list(rng.permutation(np.where(y == 0)[0]))
    i1 = list(rng.permutation(np.where(y == 1)[0]))
    out = []
    for a, b in plan:
        out.append(np.array(i0[:a] + i1[:b]))
        i0, i1 = i0[a:], i1[b:]
    out.append(np.array(i0 + i1))
    return [rng.permutation(s) for s in out]


def export_latest(job, rounds, path):
    r = job.coordinator_cmd("export", str(rounds), path)
    assert r.returncode == 0, r.stderr


def predict(model, csv, out):
    r = subprocess.run([os.path.join(BIN, "fedc-predict"), "--model", model, "--input", csv,
                        "--output", out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def read_predictions(path):
    with open(path) as f:
        head = f.readline().strip().split(",")
        rows = [line.strip().split(",") for line in f if line.strip()]
    return head, np.array([[float(v) for v in r] for r in rows])


def recipe():
    import predict_recipe  # docs/predict_recipe.py, the code of docs/predict.md
    return predict_recipe


def test_breast_cancer():
    need_sklearn()
    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    X, y = data.data, data.target
    ids = np.arange(1000, 1000 + len(y))
    Xtr, Xte, ytr, yte, idtr, idte = train_test_split(X, y, ids, test_size=0.2, random_state=0,
                                                      stratify=y)
    rng = np.random.default_rng(3)
    sites = split_sites(ytr, rng, [(33, 187), (105, 45)])  # uneven, label-skewed
    tmp = harness.tempfile.mkdtemp(prefix="fedc-bc-")
    paths = []
    for k, idx in enumerate(sites):
        order = list(rng.permutation(len(names)))
        p = os.path.join(tmp, f"site-{k + 1}.csv")
        write_csv(p, names, Xtr[idx], ytr[idx], "target", order, idtr[idx])
        paths.append(p)
    test_csv = os.path.join(tmp, "test.csv")
    write_csv(test_csv, names, Xte, yte, "target", list(rng.permutation(len(names))), idte)
    # centralized baseline on the pooled, standardized data
    sc = StandardScaler().fit(Xtr)
    lr = LogisticRegression(max_iter=5000).fit(sc.transform(Xtr), ytr)
    c_acc = lr.score(sc.transform(Xte), yte)
    c_auc = roc_auc_score(yte, lr.predict_proba(sc.transform(Xte))[:, 1])
    rounds = 40
    job = SchemaJob("bc", paths,
                    f"features = {','.join(names)}\nlabel = target\nexclude = id\ntest = {test_csv}\n",
                    "logreg", rounds=rounds, extra_model="l2 = 0.002",
                    train="epochs = 1\nbatch_size = 16\nlr = 0.1")
    try:
        job.run_all()
        st = job.status()
        assert st["statistics"]["phase"] == "done", st.get("statistics")
        assert st["statistics"]["label_counts"] == [int((ytr == 0).sum()), int((ytr == 1).sum())], st["statistics"]
        # the store keeps the federation's statistics with the job
        with job.db() as con:
            stats = json.loads(con.execute("SELECT value FROM job_texts WHERE name='stats'").fetchone()[0])
        # the sites read float32 values: the pooled float32 data's moments
        X32 = Xtr.astype(np.float32).astype(np.float64)
        dm = float(abs(np.array(stats["mean"]) - X32.mean(axis=0)).max())
        assert dm < 1e-9 * (1 + abs(X32).max()), f"federation means differ from the pooled ones by {dm}"
        ds = float(abs(np.array(stats["std"]) / X32.std(axis=0) - 1).max())
        assert ds < 1e-9, f"federation stds differ from the pooled ones by {ds} (relative)"
        coord_acc = st["rounds"][-1]["test_acc"]
        model = os.path.join(job.dir, "model.safetensors")
        export_latest(job, rounds, model)
        out = os.path.join(job.dir, "pred.csv")
        text = predict(model, test_csv, out)
        head, P = read_predictions(out)
        assert head == ["score", "label"], head
        R = recipe().predict(model, test_csv)
        diff = float(abs(R["scores"][:, -1] - P[:, 0]).max())
        assert diff <= 1e-6, f"fedc-predict and the recipe differ by {diff}"
        assert (R["labels"] == P[:, 1]).all()
        f_acc = float((P[:, 1] == yte).mean())
        f_auc = roc_auc_score(yte, P[:, 0])
        assert f"accuracy={f_acc:.6f}" in text, text
        assert abs(f_acc - coord_acc) < 1e-9, (f_acc, coord_acc)
        FIGURES["breast_cancer"] = dict(fed_acc=f_acc, fed_auc=f_auc, central_acc=c_acc,
                                        central_auc=c_auc, coord_acc=coord_acc, max_diff=diff)
        print(f"    breast_cancer: federated acc {f_acc:.4f} auc {f_auc:.4f}; centralized acc "
              f"{c_acc:.4f} auc {c_auc:.4f}; coordinator acc {coord_acc:.4f}; "
              f"predict vs recipe {diff:.2e}", flush=True)
        assert abs(f_acc - c_acc) <= 0.02 + 1e-12, (f_acc, c_acc)
        assert abs(f_auc - c_auc) <= 0.01 + 1e-12, (f_auc, c_auc)
        meta = harness.read_safetensors(open(model, "rb").read())[1]
        for key in ("model_type", "link", "features", "preprocessing", "class_labels", "job",
                    "round", "fedc_version"):
            assert key in meta, key
        assert meta["link"] == "sigmoid" and meta["model_type"] == "logreg"
        assert json.loads(meta["features"]) == names
        assert "fedc_warnings_total{kind=\"far\"}" in job.metrics()
    finally:
        job.close()
        shutil.rmtree(tmp, ignore_errors=True)


def bc_split(tmp):
    """The breast-cancer sites of test_breast_cancer (same split and column orders)."""
    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    X, y = data.data, data.target
    ids = np.arange(1000, 1000 + len(y))
    Xtr, Xte, ytr, yte, idtr, idte = train_test_split(X, y, ids, test_size=0.2, random_state=0,
                                                      stratify=y)
    rng = np.random.default_rng(3)
    sites = split_sites(ytr, rng, [(33, 187), (105, 45)])
    paths = []
    for k, idx in enumerate(sites):
        p = os.path.join(tmp, f"site-{k + 1}.csv")
        write_csv(p, names, Xtr[idx], ytr[idx], "target", list(rng.permutation(len(names))),
                  idtr[idx])
        paths.append(p)
    test_csv = os.path.join(tmp, "test.csv")
    write_csv(test_csv, names, Xte, yte, "target", list(rng.permutation(len(names))), idte)
    return names, paths, test_csv, [ytr[idx] for idx in sites]


SECURE_DATA = "\n[privacy]\nsecure_aggregation = true\n"
EXACT_KEYS = ("rows", "count", "missing", "sum", "sumsq", "label_counts", "mean", "std")


def test_statistics_secure_aggregation():
    """The statistics phase through secure aggregation (mutual TLS, loopback): the committed
    statistics equal those without it in every integer (min and max unknown, null), the
    coordinator's dump of what it received holds no site's plain statistics, the job trains to
    the same accuracy band; one site killed after sharing its keys in the statistics session
    is tolerated (the survivors' statistics are committed)."""
    need_sklearn()
    tmp = harness.tempfile.mkdtemp(prefix="fedc-bcsa-")
    names, paths, test_csv, site_y = bc_split(tmp)
    data = f"features = {','.join(names)}\nlabel = target\nexclude = id\ntest = {test_csv}\n"
    kw = dict(extra_model="l2 = 0.002", train="epochs = 1\nbatch_size = 16\nlr = 0.1")
    rounds = 15
    runs = {}
    for secure in (False, True):
        job = SchemaJob("bcsa" if secure else "bcplain", paths,
                        data + (SECURE_DATA if secure else ""), "logreg", rounds=rounds, **kw)
        debug = os.path.join(job.dir, "masked")
        os.mkdir(debug)
        try:
            job.allow_all()
            job.start_coordinator(env={"FEDC_SECAGG_DEBUG_DIR": debug} if secure else None)
            clients = [job.start_client(k) for k in range(1, 4)]
            job.wait_for(lambda: job.status() and job.status().get("state") == "finished", 240,
                         "the job to finish")
            for p in clients:
                p.wait(timeout=30)
            st = job.status()
            with job.db() as con:
                stats = json.loads(con.execute(
                    "SELECT value FROM job_texts WHERE name='stats'").fetchone()[0])
            runs[secure] = dict(stats=stats, acc=st["rounds"][-1]["test_acc"], status=st)
            if secure:
                assert st["statistics"].get("secure_aggregation") is True, st["statistics"]
                assert st["secagg"]["last"]["committed"], st["secagg"]
                ids = job.client_ids()
                dumps = sorted(os.listdir(debug))
                assert [d for d in dumps if d.startswith("stats-client-")], dumps
                for k in range(1, 4):
                    cid = ids[job.fingerprint(k)]
                    with open(os.path.join(debug, f"stats-client-{cid}.safetensors"), "rb") as f:
                        words, meta = read_u32(f.read())
                    assert meta.get("format") == "fedc-secagg-stats", meta
                    small = sum(1 for w in words if w < 1 << 16)
                    rows = sum(int(words[i]) << (16 * i) for i in range(8)) % (1 << 128)
                    # plain limbs are all below 2^16 and the first eight give the row count
                    assert small <= len(words) // 50 and rows != len(site_y[k - 1]), (small, rows)
                print(f"    masked statistics: {len(words)} words a site; below 2^16 in the "
                      f"last dump: {small} (plain: all)", flush=True)
        finally:
            job.close(keep=bool(os.environ.get("FEDC_KEEP")))
    plain, sec = runs[False]["stats"], runs[True]["stats"]
    for key in EXACT_KEYS:
        assert plain[key] == sec[key], (key, plain[key], sec[key])
    assert all(v is None for v in sec["min"] + sec["max"]), (sec["min"], sec["max"])
    assert all(v is not None for v in plain["min"]), plain["min"]
    a0, a1 = runs[False]["acc"], runs[True]["acc"]
    FIGURES["statistics_secagg"] = dict(plain_acc=a0, secure_acc=a1)
    print(f"    statistics identical with and without secure aggregation; accuracy after "
          f"{rounds} rounds {a0:.4f} plain, {a1:.4f} secure", flush=True)
    assert abs(a0 - a1) <= 0.02, (a0, a1)

    # a site killed after sharing its keys in the statistics session: four sites (site 3's
    # rows split in two), as with three every party's two neighbours must both answer (the
    # Shamir threshold is a strict majority) and no dropout can be recovered within a session
    with open(paths[2]) as f:
        lines = f.readlines()
    half = 1 + (len(lines) - 1) // 2
    four = paths[:2] + [os.path.join(tmp, "site-3a.csv"), os.path.join(tmp, "site-4.csv")]
    for path, part in ((four[2], lines[1:half]), (four[3], lines[half:])):
        with open(path, "w") as f:
            f.writelines([lines[0]] + part)
    job = SchemaJob("bcdrop", four, data + SECURE_DATA, "logreg", rounds=1,
                    round_timeout_s=6, min_clients=3, **kw)
    try:
        job.allow_all()
        job.start_coordinator()
        procs = {k: job.start_client(k, env={"FEDC_TEST_SECAGG_STALL_S": "120"} if k == 2 else None)
                 for k in range(1, 5)}
        ids = job.wait_for(lambda: len(job.client_ids()) == 4 and job.client_ids(), 20,
                           "4 clients in the store")
        victim = ids[job.fingerprint(2)]

        def shared():
            sa = (job.status() or {}).get("secagg") or {}
            return sa.get("session") == "stats" and victim in sa.get("shared_ids", []) and sa
        job.wait_for(shared, 40, "the victim to share its keys in the statistics session")
        procs[2].send_signal(signal.SIGKILL)
        procs[2].wait()
        job.wait_for(lambda: (job.status() or {}).get("statistics", {}).get("phase") == "done",
                     40, "the statistics to be committed without the victim")
        s = job.status()["statistics"]
        want = [int((site_y[0] == c).sum() + (site_y[2] == c).sum()) for c in (0, 1)]
        assert s["sites"] == 3 and s["dropped"] == 1 and s["label_counts"] == want, s
        assert s["rows"] == len(site_y[0]) + len(site_y[2]), s
        print(f"    one of four sites killed after sharing keys: the session recovered, the "
              f"other three's statistics committed ({s['rows']} rows)", flush=True)
    finally:
        job.close()
        shutil.rmtree(tmp, ignore_errors=True)


def read_u32(blob):
    """(words, metadata) of a container with one U32 tensor "masked"."""
    import array
    import struct
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    assert list(header) == ["masked"] and header["masked"]["dtype"] == "U32", header
    a, b = header["masked"]["data_offsets"]
    words = array.array("I")
    words.frombytes(blob[8 + n + a:8 + n + b])
    if sys.byteorder != "little":
        words.byteswap()
    return words, meta


def test_diabetes():
    need_sklearn()
    d = load_diabetes(scaled=False)
    names = list(d.feature_names)
    X, y = d.data, d.target
    ids = np.arange(len(y))
    Xtr, Xte, ytr, yte, idtr, idte = train_test_split(X, y, ids, test_size=0.2, random_state=0)
    rng = np.random.default_rng(5)
    order = np.argsort(ytr)  # skewed: site 1 the low targets, site 2 the high, site 3 mixed
    sites = [order[:60], order[-140:], order[60:-140]]
    tmp = harness.tempfile.mkdtemp(prefix="fedc-diab-")
    paths = []
    for k, idx in enumerate(sites):
        p = os.path.join(tmp, f"site-{k + 1}.csv")
        write_csv(p, names, Xtr[idx], ytr[idx].astype(float), "target",
                  list(rng.permutation(len(names))), idtr[idx])
        paths.append(p)
    test_csv = os.path.join(tmp, "test.csv")
    write_csv(test_csv, names, Xte, yte.astype(float), "target", list(rng.permutation(len(names))), idte)
    sc = StandardScaler().fit(Xtr)
    c_r2 = r2_score(yte, LinearRegression().fit(sc.transform(Xtr), ytr).predict(sc.transform(Xte)))
    rounds = 60
    job = SchemaJob("diab", paths,
                    f"features = {','.join(names)}\nlabel = target\nexclude = id\ntest = {test_csv}\n",
                    "linreg", rounds=rounds, train="epochs = 2\nbatch_size = 32\nlr = 0.02")
    try:
        job.run_all()
        model = os.path.join(job.dir, "model.safetensors")
        export_latest(job, rounds, model)
        out = os.path.join(job.dir, "pred.csv")
        predict(model, test_csv, out)
        _, P = read_predictions(out)
        R = recipe().predict(model, test_csv)
        diff = float(abs(R["scores"][:, 0] - P[:, 0]).max() / max(1.0, abs(P[:, 0]).max()))
        assert diff <= 1e-6, diff
        f_r2 = r2_score(yte, P[:, 0])
        FIGURES["diabetes"] = dict(fed_r2=f_r2, central_r2=c_r2, max_rel_diff=diff)
        print(f"    diabetes: federated R2 {f_r2:.4f}; centralized least squares R2 {c_r2:.4f}; "
              f"predict vs recipe {diff:.2e} (relative)", flush=True)
        assert abs(f_r2 - c_r2) <= 0.02, (f_r2, c_r2)
    finally:
        job.close()
        shutil.rmtree(tmp, ignore_errors=True)


BAD_CASES = [
    # (name, edit of site 1's CSV text, expected message parts)
    ("missing_feature", lambda h, r: (h.replace(",b,", ","), [x for x in r]),
     ["site-1.csv:1:", "column 'b'", "missing from the header"]),
    ("extra_column", lambda h, r: (h + ",extra", [x + ",5" for x in r]),
     ["site-1.csv:1:", "column 6 'extra'", "[data] exclude"]),
    ("not_a_number", lambda h, r: (h, r[:2] + [r[2].replace(",2.5,", ",abc,", 1)] + r[3:]),
     ["site-1.csv:4:", "'b'", "'abc' is not a finite number"]),
    ("missing_value", lambda h, r: (h, r[:1] + [r[1].replace(",2.5,", ",,", 1)] + r[2:]),
     ["site-1.csv:3:", "'b'", "missing, and [data] missing = refuse"]),
    ("bad_category", lambda h, r: (h, r[:3] + [r[3].replace(",red,", ",purple,", 1)] + r[4:]),
     ["site-1.csv:5:", "'c'", "'purple' is not in the column's vocabulary"]),
]


def small_site(path, k, edit=None):
    header = "id,a,b,c,target"
    rows = [f"{i},{i * 0.5 + k},2.5,{'red' if i % 2 else 'blue'},{i % 2}" for i in range(8)]
    if edit:
        header, rows = edit(header, rows)
    with open(path, "w") as f:
        f.write(header + "\n" + "\n".join(rows) + "\n")


def test_bad_schema_cases():
    """Each bad site CSV: one message naming file, line and column; nothing trained or stored."""
    for name, edit, parts in BAD_CASES:
        tmp = harness.tempfile.mkdtemp(prefix="fedc-bad-")
        paths = []
        for k in (1, 2):
            p = os.path.join(tmp, f"site-{k}.csv")
            small_site(p, k, edit if k == 1 else None)
            paths.append(p)
        job = SchemaJob("bad", paths, "features = a,b,c\ncategorical = c:red|blue\nlabel = target\n"
                        "exclude = id\ntest =\n", "logreg", rounds=2, round_timeout_s=5)
        try:
            job.allow_all()
            job.start_coordinator()
            bad = job.start_client(1)
            good = job.start_client(2)
            rc = bad.wait(timeout=60)
            assert rc != 0, f"{name}: the bad site exited 0"
            log = job.log("client-1.log")
            for part in parts:
                assert part in log, f"{name}: {part!r} not in the site's message: {log[-800:]}"
            time.sleep(1.0)
            st = job.status()
            assert st["rounds"] == [], f"{name}: a round committed"
            assert st["statistics"]["phase"] == "collecting", st["statistics"]
            with job.db() as con:
                tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master")]
                if "job_texts" in tables:
                    assert con.execute("SELECT count(*) FROM job_texts").fetchone()[0] == 0, name
                assert con.execute("SELECT count(*) FROM updates").fetchone()[0] == 0
            good.kill()
        finally:
            job.close()
            shutil.rmtree(tmp, ignore_errors=True)


def test_restart_keeps_statistics():
    """kill -9 after the statistics phase: the restarted coordinator has them, asks no site again."""
    tmp = harness.tempfile.mkdtemp(prefix="fedc-rs-")
    paths = []
    for k in (1, 2):
        p = os.path.join(tmp, f"site-{k}.csv")
        small_site(p, k)
        paths.append(p)
    job = SchemaJob("rs", paths, "features = a,b,c\ncategorical = c:red|blue\nlabel = target\n"
                    "exclude = id\ntest =\n", "logreg", rounds=200, round_timeout_s=5)
    try:
        job.allow_all()
        job.start_coordinator()
        cl = [job.start_client(k) for k in (1, 2)]
        job.wait_for(lambda: job.committed() >= 2, 60, "two rounds")
        before = job.status()["statistics"]
        job.coordinator.send_signal(signal.SIGKILL)
        job.coordinator.wait()
        job.start_coordinator()
        st = job.status()
        assert st["statistics"]["phase"] == "done" and st["statistics"]["rows"] == before["rows"], st
        assert st["statistics"]["label_counts"] == before["label_counts"]
        job.wait_for(lambda: job.committed() >= len(st["rounds"]) + 1, 60, "a round after restart")
        assert "statistics in" not in job.log("coordinator.log").split("federation statistics restored")[-1]
        for p in cl:
            p.kill()
    finally:
        job.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_sim_schema():
    """fedc-sim reads the CSV by the same schema and standardizes with the federation's
    statistics: the breast-cancer job in simulation, against the same centralized baseline."""
    need_sklearn()
    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    X, y = data.data, data.target
    ids = np.arange(len(y))
    Xtr, Xte, ytr, yte, idtr, idte = train_test_split(X, y, ids, test_size=0.2, random_state=0,
                                                      stratify=y)
    rng = np.random.default_rng(11)
    tmp = harness.tempfile.mkdtemp(prefix="fedc-sim-")
    try:
        tr, te = os.path.join(tmp, "train.csv"), os.path.join(tmp, "test.csv")
        write_csv(tr, names, Xtr, ytr, "target", list(rng.permutation(len(names))), idtr)
        write_csv(te, names, Xte, yte, "target", list(rng.permutation(len(names))), idte)
        sc = StandardScaler().fit(Xtr)
        c_acc = LogisticRegression(max_iter=5000).fit(sc.transform(Xtr), ytr).score(sc.transform(Xte), yte)
        r = subprocess.run([os.path.join(BIN, "fedc-sim"), "--json",
                            "--set", "model.type=logreg", "--set", "model.l2=0.002",
                            "--set", "data.format=csv", "--set", f"data.train={tr}",
                            "--set", f"data.test={te}", "--set", "data.label=target",
                            "--set", "data.exclude=id", "--set", "data.features=" + ",".join(names),
                            "--set", "sim.clients=3", "--set", "sim.partition=dirichlet",
                            "--set", "sim.alpha=0.5", "--set", "job.clients_per_round=3",
                            "--set", "job.min_clients=3", "--set", "job.rounds=40",
                            "--set", "train.batch_size=16", "--set", "train.lr=0.1"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-1500:]
        final = json.loads(r.stdout.strip().splitlines()[-1])
        FIGURES["sim_breast_cancer"] = dict(sim_acc=final["test_acc"], central_acc=c_acc)
        print(f"    fedc-sim breast_cancer: acc {final['test_acc']:.4f}; centralized {c_acc:.4f}",
              flush=True)
        assert abs(final["test_acc"] - c_acc) <= 0.02 + 1e-12, (final["test_acc"], c_acc)
        r = subprocess.run([os.path.join(BIN, "fedc-sim"), "--set", "data.format=csv",
                            "--set", f"data.train={tr}", "--set", f"data.test={te}",
                            "--set", "data.label=target", "--set", "model.type=logreg",
                            "--set", "data.features=" + ",".join(names[:-1])],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "'id'" in r.stderr and "[data] exclude" in r.stderr, r.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_diverged_site_warned():
    """A site whose training loss diverges withholds its update: logged at the site, counted
    at the coordinator (/metrics, /v1/status); the job goes on."""
    tmp = harness.tempfile.mkdtemp(prefix="fedc-dv-")
    paths = []
    for k in (1, 2):
        p = os.path.join(tmp, f"site-{k}.csv")
        small_site(p, k)
        paths.append(p)
    job = SchemaJob("dv", paths, "features = a,b,c\ncategorical = c:red|blue\nlabel = target\n"
                    "exclude = id\ntest =\n", "linreg", rounds=3, round_timeout_s=3,
                    train="epochs = 20\nbatch_size = 1\nlr = 40")
    try:
        job.allow_all()
        job.start_coordinator()
        cl = [job.start_client(k) for k in (1, 2)]
        job.wait_for(lambda: (job.status().get("warnings") or {}).get("diverged", 0) >= 1, 60,
                     "a diverged warning")
        st = job.status()
        assert st["warnings"]["recent"][0]["kind"] == "diverged", st["warnings"]
        assert 'fedc_warnings_total{kind="diverged"}' in job.metrics()
        # the dashboard draws the warnings and the federation's statistics from this status
        with harness.urllib.request.urlopen(f"http://127.0.0.1:{job.status_port}/", timeout=2) as r:
            page = r.read().decode()
        for part in ("statsCard(s.statistics)", "warningsCard(s.warnings)", "'Federation statistics'",
                     "' diverged'"):
            assert part in page, part
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium:  # the rendered page: the two cards with the status's figures
            prof = os.path.join(job.dir, "chromium")
            dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                  "--no-first-run", f"--user-data-dir={prof}",
                                  "--virtual-time-budget=5000", "--dump-dom",
                                  f"http://127.0.0.1:{job.status_port}/"],
                                 capture_output=True, text=True, timeout=120).stdout
            n = job.status()["warnings"]["diverged"]
            for part in ("Federation statistics", "2 sites", "Warnings", "0 far",
                         "diverged", "client "):
                assert part in dom, (part, dom[dom.find('id="cards"'):][:1500])
            print(f"    dashboard: statistics and warnings cards rendered ({n} diverged)", flush=True)
        else:
            print("    dashboard DOM check skipped: chromium is not installed", flush=True)
        logs = job.log("client-1.log") + job.log("client-2.log")
        assert "warning=diverged" in logs and "update withheld" in logs
        for p in cl:
            assert p.poll() is None, "a diverging site ended its run"
            p.kill()
    finally:
        job.close()
        shutil.rmtree(tmp, ignore_errors=True)


def string_site(path, k, bad=None):
    """A site whose labels are strings (M when a + b is large, else B), columns shuffled."""
    rows = []
    for i in range(40):
        a, b = (i * 7 % 40) / 4.0 + k, (i * 3 % 11) / 2.0
        lab = "M" if a + 2 * b > 12 else "B"
        rows.append(f"{b},{lab},{i},{a}")
    if bad:
        rows[5] = rows[5].replace(",M,", f",{bad},").replace(",B,", f",{bad},")
    with open(path, "w") as f:
        f.write("b,diagnosis,id,a\n" + "\n".join(rows) + "\n")


def test_string_labels():
    """Class labels that are strings ("M"/"B") mapped through [data] class_labels: trained on,
    carried in the model's metadata, printed by fedc-predict and the recipe; a label outside
    them refused at the site naming file, line and column; fedc-sim's saved model describes
    itself the same way."""
    need_sklearn()
    tmp = harness.tempfile.mkdtemp(prefix="fedc-sl-")
    paths = []
    for k in (1, 2):
        p = os.path.join(tmp, f"site-{k}.csv")
        string_site(p, k)
        paths.append(p)
    data = "features = a,b\nlabel = diagnosis\nexclude = id\nclass_labels = B|M\ntest =\n"
    job = SchemaJob("sl", paths, data, "logreg", rounds=15, round_timeout_s=10,
                    train="epochs = 5\nlr = 0.5\nbatch_size = 8")
    try:
        job.run_all(timeout=120)
        model = os.path.join(job.dir, "model.safetensors")
        export_latest(job, 15, model)
        meta = harness.read_safetensors(open(model, "rb").read())[1]
        assert json.loads(meta["class_labels"]) == ["B", "M"], meta["class_labels"]
        assert json.loads(meta["schema"])["class_labels"] == ["B", "M"]
        out = os.path.join(tmp, "pred.csv")
        text = predict(model, paths[0], out)
        with open(out) as f:
            assert f.readline().strip() == "score,label"
            labels = [line.strip().split(",")[1] for line in f if line.strip()]
        assert set(labels) == {"B", "M"}, set(labels)
        truth = [line.split(",")[1] for line in open(paths[0]).read().splitlines()[1:]]
        acc = sum(p == t for p, t in zip(labels, truth)) / len(truth)
        assert f"accuracy={acc:.6f}" in text and acc >= 0.8, (text, acc)
        assert recipe().predict(model, paths[0])["names"] == labels
        print(f"    string labels: site-1 accuracy {acc:.4f} (B/M)", flush=True)
    finally:
        job.close()
    # a label that is not one of the declared ones: refused at start, nothing trained
    bad_paths = [os.path.join(tmp, "bad-1.csv"), paths[1]]
    string_site(bad_paths[0], 1, bad="X")
    job = SchemaJob("slbad", bad_paths, data, "logreg", rounds=2, round_timeout_s=5)
    try:
        job.allow_all()
        job.start_coordinator()
        bad = job.start_client(1)
        assert bad.wait(timeout=60) != 0
        log = job.log("client-1.log")
        for part in ("bad-1.csv:7:", "'diagnosis'", "not one of the job's class labels"):
            assert part in log, (part, log[-600:])
        assert job.status()["rounds"] == []
    finally:
        job.close()
    # fedc-sim --save: the same self-describing metadata
    try:
        saved = os.path.join(tmp, "sim.safetensors")
        r = subprocess.run([os.path.join(BIN, "fedc-sim"), "--save", saved,
                            "--set", "model.type=logreg", "--set", "data.format=csv",
                            "--set", f"data.train={paths[0]}", "--set", f"data.test={paths[1]}",
                            "--set", "data.label=diagnosis", "--set", "data.exclude=id",
                            "--set", "data.features=a,b", "--set", "data.class_labels=B|M",
                            "--set", "sim.clients=2", "--set", "job.clients_per_round=2",
                            "--set", "job.min_clients=2", "--set", "job.rounds=3"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-800:]
        meta = harness.read_safetensors(open(saved, "rb").read())[1]
        for key in ("model_type", "head_outputs", "link", "features", "schema", "preprocessing",
                    "class_labels", "job", "round", "fedc_version"):
            assert key in meta, (key, sorted(meta))
        assert meta["link"] == "sigmoid" and json.loads(meta["features"]) == ["a", "b"]
        assert json.loads(meta["class_labels"]) == ["B", "M"] and meta["round"] == "3"
        text = predict(saved, paths[1], os.path.join(tmp, "sim-pred.csv"))
        assert "accuracy=" in text, text
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def gaussian_epsilon(steps, z, delta):
    """epsilon of `steps` Gaussian mechanisms at noise multiplier z (RDP a / (2 z^2) each),
    converted as shared/privacy/rdp.c does, over its default orders."""
    orders = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5] + list(range(5, 65)) + [128, 256]
    best = float("inf")
    for a in orders:
        e = steps * a / (2 * z * z) + math.log((a - 1) / a) - (math.log(delta) + math.log(a)) / (a - 1)
        best = min(best, max(e, 0.0))
    return best


def test_dp_statistics():
    """[privacy] noise_multiplier > 0 with a schema: each site's statistics are released with
    Gaussian noise within the declared clip bounds, and their share is in the privacy ledger:
    with every site in every round (q = 1), round r's epsilon is that of r + 1 Gaussian steps."""
    tmp = harness.tempfile.mkdtemp(prefix="fedc-dps-")
    paths = []
    for k in (1, 2):
        # enough rows that the statistics' noise leaves a usable standardization
        p = os.path.join(tmp, f"site-{k}.csv")
        with open(p, "w") as f:
            f.write("id,a,b,c,target\n")
            for i in range(2000):
                a, b = (i * 37 % 101) / 10.0, (i * 13 % 51) / 10.0
                f.write(f"{i},{a},{b},{'red' if i % 2 else 'blue'},{int(a + b > 7.5)}\n")
        paths.append(p)
    z, delta = 4.0, 1e-5
    job = SchemaJob("dps", paths, "features = a,b,c\ncategorical = c:red|blue\nlabel = target\n"
                    "exclude = id\ntest =\nclip = a:0:10, b:0:5\n", "logreg", rounds=2,
                    round_timeout_s=10,
                    extra_model=f"[privacy]\nnoise_multiplier = {z}\nclip_norm = 0.01\ndelta = {delta}")
    try:
        job.run_all(timeout=120)
        st = job.status()
        assert st["statistics"]["phase"] == "done", st["statistics"]
        eps = [r["epsilon"] for r in st["rounds"]]
        want = [gaussian_epsilon(r + 1, z, delta) for r in (1, 2)]
        without = [gaussian_epsilon(r, z, delta) for r in (1, 2)]
        print(f"    dp statistics: epsilon by round {eps}; with the statistics' step {want}, "
              f"without {without}", flush=True)
        for e, w in zip(eps, want):
            assert abs(e - w) <= 1e-6 * w, (eps, want)
        with job.db() as con:
            text = con.execute("SELECT value FROM job_texts WHERE name = 'stats'").fetchone()[0]
        stats = json.loads(text)
        assert stats["noise_multiplier"] == z, stats
        # min and max are the public bounds, never a site's own extremes
        assert stats["min"][:2] == [0, 0] and stats["max"][:2] == [10, 5], stats
        logs = job.log("client-1.log") + job.log("client-2.log")
        assert "statistics under differential privacy" in logs
        # fedc-sim spends the same share: 2 rounds at q = 1 after the statistics' step
        r = subprocess.run([os.path.join(BIN, "fedc-sim"), "--json", "--set", "model.type=logreg",
                            "--set", "data.format=csv", "--set", f"data.train={paths[0]}",
                            "--set", f"data.test={paths[1]}", "--set", "data.label=target",
                            "--set", "data.exclude=id", "--set", "data.features=a,b,c",
                            "--set", "data.categorical=c:red|blue", "--set", "data.clip=a:0:10,b:0:5",
                            "--set", f"privacy.noise_multiplier={z}", "--set", f"privacy.delta={delta}",
                            "--set", "sim.clients=2", "--set", "job.clients_per_round=2",
                            "--set", "job.min_clients=2", "--set", "job.rounds=2"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-800:]
        final = json.loads(r.stdout.strip().splitlines()[-1])
        assert abs(final["epsilon"] - want[1]) <= 1e-4 * want[1], (final["epsilon"], want[1])
    finally:
        job.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_refused_combinations():
    """Per-site standardize, coordinator standardize, schema with DP and no clip bounds, bad clip and class labels."""
    tmp = harness.tempfile.mkdtemp(prefix="fedc-cfg-")
    paths = []
    for k in (1,):
        p = os.path.join(tmp, f"site-{k}.csv")
        small_site(p, k)
        paths.append(p)
    job = SchemaJob("cfg", paths, "features = a,b,c\ncategorical = c:red|blue\nlabel = target\n"
                    "exclude = id\ntest =\n", "logreg", rounds=2)
    try:
        cases = [("data.standardize=true", "the coordinator has no training data"),
                 ("privacy.noise_multiplier=1.0", "[data] clip: feature 'a' has no bounds"),
                 ("data.clip=a:0:10,c:0:1", "'c' is categorical"),
                 ("data.class_labels=x|y|z", "[data] class_labels names 3 classes; [model] type = logreg has 2")]
        for kv, msg in cases:
            r = subprocess.run([os.path.join(BIN, "fedc-coordinator"), "--config", job.coord_ini,
                                "--set", kv], capture_output=True, text=True, timeout=30)
            assert r.returncode == 2 and msg in r.stderr, (kv, r.returncode, r.stderr)
        r = subprocess.run([os.path.join(BIN, "fedc-client"), "--config", job.client_ini(1),
                            "--set", "data.standardize=true"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2 and "scale its features by its own statistics" in r.stderr, r.stderr
    finally:
        job.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    s = Suite("schema")
    tests = [test_refused_combinations, test_dp_statistics, test_string_labels, test_bad_schema_cases, test_restart_keeps_statistics,
             test_diverged_site_warned, test_sim_schema,
             test_breast_cancer, test_statistics_secure_aggregation, test_diabetes]
    only = sys.argv[1:]
    for t in tests:
        if not only or t.__name__ in only:
            s.run(t)
    if FIGURES:
        print("  figures: " + json.dumps(FIGURES), flush=True)
    s.finish()


if __name__ == "__main__":
    main()
