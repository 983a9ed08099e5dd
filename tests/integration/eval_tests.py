"""eval_tests.py - federated evaluation, metrics by task and class weights,
end to end: a real coordinator (no test set) and three real clients on
loopback, binary data with about 2% positives split unevenly (written here
from a seeded generator). The federation's AUC, precision, recall and F1 in
/v1/status must agree with sklearn.metrics on the pooled predictions,
recomputed in numpy from the exported model (AUC within the bound the
coordinator states, the others within 0.001); class_weight = balanced must
raise the positives' recall; export best writes the best round's model;
fedc-sim's per-class recall and macro F1 on Fashion-MNIST must match a
recomputation from its saved model. Needs numpy and scikit-learn under
/usr/bin/python3 (scripts/install-deps.sh).
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Job, Skip, Suite  # noqa: E402

try:
    import numpy as np
    from sklearn import metrics as skm
except ImportError:  # reported as a skip by every case
    np = None

D = 10
SITES = [(2400, 600, 0.010), (1200, 300, 0.025), (600, 150, 0.045)]  # train, validation, positives


def write_csv(path, x, y):
    with open(path, "w") as f:
        f.write(",".join(f"f{i}" for i in range(D)) + ",label\n")
        for row, lab in zip(x, y):
            f.write(",".join(f"{v:.6f}" for v in row) + f",{int(lab)}\n")


def make_site(rng, n, rate):
    y = (rng.random(n) < rate).astype(int)
    x = rng.normal(size=(n, D))
    x[:, :4] += 1.2 * y[:, None]  # the positives differ in four features
    return x, y


def fraud_job(name, class_weight, per_site=False, rounds=4):
    if np is None:
        raise Skip("numpy and scikit-learn are not installed for /usr/bin/python3")
    job = Job(name, 3, sizes=[10, 10, 10], rounds=rounds, model="logreg", poll_s=1)
    rng = np.random.default_rng(2026)
    val = []
    for k, (ntr, nva, rate) in enumerate(SITES, 1):
        x, y = make_site(rng, ntr + nva, rate)
        d = os.path.join(job.dir, f"csv-{k}")
        os.makedirs(d, exist_ok=True)
        write_csv(os.path.join(d, "train.csv"), x[:ntr], y[:ntr])
        write_csv(os.path.join(d, "val.csv"), x[ntr:], y[ntr:])
        val.append((x[ntr:], y[ntr:]))
    with open(job.coord_ini) as f:
        text = f.read()
    text = text.replace("inputs = 784\nclasses = 10", f"inputs = {D}\nclasses = 0")
    text = text.replace("lr = 0.05", f"lr = 0.1\nclass_weight = {class_weight}")
    text += ("[eval]\nevery = 1\nfraction = 1\nthreshold = 0.5\nselect = auc\n"
             f"per_site = {'true' if per_site else 'false'}\ndeadline_s = 20\n")
    with open(job.coord_ini, "w") as f:
        f.write(text)
    job.allow_all()
    job.start_coordinator()
    for k in range(1, 4):
        ini = job.client_ini(k)
        with open(ini) as f:
            t = f.read()
        d = os.path.join(job.dir, f"csv-{k}")
        t = t.replace("format = idx", "format = csv")
        t = t.replace(f"train = {job.dir}/data/client-{k}/train-images.idx",
                      f"train = {d}/train.csv\nvalidation = {d}/val.csv\nlabel = label")
        t = t.replace(f"train_labels = {job.dir}/data/client-{k}/train-labels.idx\n", "")
        with open(ini, "w") as f:
            f.write(t)
        log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
        job.procs.append(subprocess.Popen(
            [os.path.join(harness.BIN, "fedc-client"), "--config", ini], stdout=log, stderr=log))
    job.wait_for(lambda: (job.status() or {}).get("state") == "finished"
                 and len(job.status()["eval"]["rounds"]) == rounds, 90, "the job and its evaluations")
    return job, val


def pooled_predictions(job, rnd, val):
    out = os.path.join(job.dir, f"round-{rnd}.safetensors")
    r = job.coordinator_cmd("export", str(rnd), out)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        tensors, _ = harness.read_safetensors(f.read())
    w = np.array(tensors["layers.0.weight"][1], dtype=np.float32).reshape(-1)
    b = np.array(tensors["layers.0.bias"][1], dtype=np.float32)[0]
    x = np.concatenate([v[0] for v in val]).astype(np.float32)
    y = np.concatenate([v[1] for v in val])
    p = 1.0 / (1.0 + np.exp(-(x @ w + b).astype(np.float64)))
    return p, y


def check_against_sklearn(job, val, figures):
    st = job.status()
    assert "test_acc" not in st or True  # the coordinator has no test set
    last = st["eval"]["last"]
    p, y = pooled_predictions(job, last["round"], val)
    pred = (p >= 0.5).astype(int)
    auc = skm.roc_auc_score(y, p)
    prec = skm.precision_score(y, pred, zero_division=0)
    rec = skm.recall_score(y, pred, zero_division=0)
    f1 = skm.f1_score(y, pred, zero_division=0)
    ap = skm.average_precision_score(y, p)
    print(f"    fedc auc {last['auc']:.6f} (bound {last['auc_bound']:.2e}) sklearn {auc:.6f}; "
          f"pr_auc {last['pr_auc']:.6f} (bound {last['pr_auc_bound']:.2e}) sklearn {ap:.6f}; "
          f"precision {last['precision']:.4f}/{prec:.4f} recall {last['recall']:.4f}/{rec:.4f} "
          f"f1 {last['f1']:.4f}/{f1:.4f}; n {last['n']} positives {int(y.sum())}", flush=True)
    assert last["n"] == len(y), (last["n"], len(y))
    assert abs(last["auc"] - auc) <= last["auc_bound"] + 1e-4, (last["auc"], auc)
    assert abs(last["pr_auc"] - ap) <= last["pr_auc_bound"] + 1e-4, (last["pr_auc"], ap)
    for name, ref in (("precision", prec), ("recall", rec), ("f1", f1)):
        assert abs(last[name] - ref) <= 0.001, (name, last[name], ref)
    assert last["tp"] + last["fn"] == int(y.sum())
    figures.update(recall=last["recall"], precision=last["precision"], auc=last["auc"])


FIG = {}


def test_federated_binary_matches_sklearn():
    job, val = fraud_job("eval-none", "none")
    try:
        check_against_sklearn(job, val, FIG.setdefault("none", {}))
        st = job.status()
        assert "sites" not in st["eval"], "per-site figures shown without [eval] per_site"
        assert st["eval"]["best_round"] >= 1
        m = job.metrics()
        assert "fedc_eval_auc " in m and 'fedc_eval_selected{metric="auc"}' in m, m[-800:]
        # the store holds every round's evaluation
        with job.db() as con:
            rows = list(con.execute("SELECT round, sites, asked FROM evals ORDER BY round"))
        assert [r[0] for r in rows] == [1, 2, 3, 4] and all(r[1] == 3 for r in rows), rows
        # export best writes the best round's model
        best = st["eval"]["best_round"]
        out = os.path.join(job.dir, "best.safetensors")
        r = job.coordinator_cmd("export", "best", out)
        assert r.returncode == 0 and f"best round by the federated evaluation: {best}" in r.stdout, \
            r.stdout + r.stderr
        with open(out, "rb") as f, job.db() as con:
            blob = con.execute("SELECT model FROM checkpoints WHERE round = ?", (best,)).fetchone()[0]
            assert f.read() == blob
        # each site sees its own figures in its own log
        with open(os.path.join(job.dir, "client-3.log")) as f:
            assert 'msg="site evaluation"' in f.read()
        # a restarted coordinator reads its evaluations back from the store
        job.coordinator.kill()
        job.coordinator.wait()
        job.start_coordinator()
        again = job.status()["eval"]
        assert len(again["rounds"]) == 4 and again["best_round"] == best, again
        assert again["last"]["auc"] == st["eval"]["last"]["auc"]
    finally:
        job.close()


def test_balanced_raises_recall():
    job, val = fraud_job("eval-balanced", "balanced", per_site=True)
    try:
        check_against_sklearn(job, val, FIG.setdefault("balanced", {}))
        st = job.status()
        sites = st["eval"].get("sites")
        assert sites and len(sites) == 3 and {s["name"] for s in sites} == {"site-1", "site-2", "site-3"}
        assert sum(s["n"] for s in sites) == st["eval"]["last"]["n"]
    finally:
        job.close()
    if "none" not in FIG:
        raise Skip("the unweighted job did not run")
    print(f"    positive recall: class_weight = none {FIG['none']['recall']:.3f}, "
          f"balanced {FIG['balanced']['recall']:.3f} (precision {FIG['none']['precision']:.3f} "
          f"-> {FIG['balanced']['precision']:.3f})", flush=True)
    assert FIG["balanced"]["recall"] > FIG["none"]["recall"] + 0.1


def png_rgb(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, prev, rows = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        ft, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ft == 1: line[i] = (line[i] + a) & 255
            elif ft == 2: line[i] = (line[i] + b) & 255
            elif ft == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def test_dashboard_in_chromium():
    """The dashboard of a coordinator without a test set, in headless
    Chromium: the evaluation chart has a line and the confusion matrix its
    counts (the rendered DOM), and both show in the screenshot (pixels of
    the metric's colour and of the matrix's shaded cells)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise Skip("chromium is not installed (scripts/install-deps.sh)")
    job, _ = fraud_job("eval-dash", "balanced", rounds=3)
    try:
        url = f"http://127.0.0.1:{job.status_port}/"
        prof = os.path.join(job.dir, "chromium")
        base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                f"--user-data-dir={prof}", "--virtual-time-budget=5000", "--window-size=1280,1400"]
        dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True,
                             timeout=120).stdout
        chart = dom[dom.find('id="evalchart"'):]
        chart = chart[:chart.find("</svg>")]
        assert "<path" in chart and "stroke=\"#8250df\"" in chart, chart[:500]
        cm = dom[dom.find('id="confusion"'):]
        cm = cm[:cm.find("</table>")]
        last = job.status()["eval"]["last"]
        tn, fp, fn, tp = last["tn"], last["fp"], last["fn"], last["tp"]
        for v in (tn, fp, fn, tp):
            assert f">{v:,}<" in cm, (v, cm[:800])
        assert "class 1" in cm and "recall" in cm
        png = os.path.join(job.dir, "dashboard.png")
        subprocess.run(base + [f"--screenshot={png}", url], capture_output=True, timeout=120)
        w, h, rows = png_rgb(png)
        keep = os.environ.get("FEDC_EVAL_SCREENSHOT")
        if keep:
            shutil.copy(png, keep)
        purple = sum(1 for r in rows for p in r
                     if abs(p[0] - 0x82) < 30 and abs(p[1] - 0x50) < 30 and abs(p[2] - 0xdf) < 30)
        shaded = sum(1 for r in rows for p in r
                     if p[2] > 200 and p[2] - p[0] > 40 and p[0] > 60 and p[1] < 235)
        print(f"    screenshot {w}x{h}: {purple} px of the metric's line, {shaded} px of shaded "
              f"matrix cells", flush=True)
        assert purple > 100 and shaded > 500, (purple, shaded)
    finally:
        job.close()


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def test_sim_fashion_per_class():
    if np is None:
        raise Skip("numpy and scikit-learn are not installed for /usr/bin/python3")
    fm = harness.FMNIST
    if not os.path.exists(f"{fm}/t10k-images-idx3-ubyte.gz"):
        raise Skip("Fashion-MNIST is not installed")
    out = os.path.join("/tmp", f"fedc-eval-sim-{os.getpid()}.safetensors")
    r = subprocess.run([os.path.join(harness.BIN, "fedc-sim"), "--config",
                        os.path.join(harness.ROOT, "configs/sim-fashion-softmax.ini"),
                        "--set", "job.rounds=3", "--json", "--save", out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    final = json.loads(r.stdout.strip().splitlines()[-1])
    ev = final["eval"]
    with open(out, "rb") as f:
        tensors, _ = harness.read_safetensors(f.read())
    os.unlink(out)
    w = np.array(tensors["layers.0.weight"][1], dtype=np.float32).reshape(10, 784)
    b = np.array(tensors["layers.0.bias"][1], dtype=np.float32)
    x = load_idx(f"{fm}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    y = load_idx(f"{fm}/t10k-labels-idx1-ubyte.gz")
    pred = np.argmax(x @ w.T + b, axis=1)
    recall = skm.recall_score(y, pred, average=None)
    macro = skm.f1_score(y, pred, average="macro")
    print(f"    macro F1 fedc {ev['macro_f1']:.6f} numpy {macro:.6f}; per-class recall max diff "
          f"{np.max(np.abs(np.array(ev['class_recall']) - recall)):.2e}", flush=True)
    assert abs(ev["macro_f1"] - macro) <= 0.002
    assert np.max(np.abs(np.array(ev["class_recall"]) - recall)) <= 0.002
    assert ev["n"] == 10000 and abs(ev["accuracy"] - final["test_acc"]) < 1e-3


if __name__ == "__main__":
    s = Suite("eval")
    s.run(test_federated_binary_matches_sklearn)
    s.run(test_balanced_raises_recall)
    s.run(test_dashboard_in_chromium)
    s.run(test_sim_fashion_per_class)
    s.finish()
