#!/usr/bin/python3
"""run.py - a PyTorch CNN trained across 4 sites on Fashion-MNIST shards,
through fedc-client's external trainer, over mutual TLS on loopback
(README.md). `make example-pytorch` runs it.

It makes a development PKI (certs/make-certs.sh), splits the 60,000
training images into one shard per site (tests/tools/split_idx.py), writes
the job's initial model from the CNN's state dict (make_init.py), starts
fedc-coordinator with a tensor job ([model] type = tensors) and one
fedc-client per site whose [trainer] command is train.py, and prints each
committed round's test accuracy (evaluate.py's reading of the committed
model on the 10,000 test images), seconds and the clients' peak RSS.

    run.py [--rounds 10] [--sites 4] [--shard 15000] [--epochs 2] [--lr 0.02] [--keep]
"""
import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.join(ROOT, os.environ.get("FEDC_BUILD", "build"), "bin")
FMNIST = os.environ.get("FEDC_FMNIST", "/usr/share/datasets/fashion-mnist")
PY = "/usr/bin/python3"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def peak_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    """The pids whose parent is pid."""
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(e))
            except (OSError, ValueError, IndexError):
                pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--shard", type=int, default=15000, help="training images per site")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    for b in ("fedc-coordinator", "fedc-client"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            sys.exit(f"run.py: {BIN}/{b} is not built (make)")
    d = tempfile.mkdtemp(prefix="fedc-pytorch-cnn-")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    procs = []
    try:
        subprocess.run([os.path.join(ROOT, "certs/make-certs.sh"), f"{d}/pki", str(a.sites)],
                       check=True, capture_output=True)
        subprocess.run([PY, os.path.join(ROOT, "tests/tools/split_idx.py"),
                        f"{FMNIST}/train-images-idx3-ubyte.gz", f"{FMNIST}/train-labels-idx1-ubyte.gz",
                        f"{d}/data"] + [str(a.shard)] * a.sites, check=True, capture_output=True)
        subprocess.run([PY, os.path.join(HERE, "make_init.py"), f"{d}/init.safetensors"],
                       check=True, env=env)
        port, status_port = free_port(), free_port()
        ini = f"{d}/coordinator.ini"
        with open(ini, "w") as f:
            f.write(f"""[job]
rounds = {a.rounds}
clients_per_round = {a.sites}
min_clients = {a.sites}
round_timeout_s = 900
seed = 1
[model]
type = tensors
init = {d}/init.safetensors
[train]
epochs = {a.epochs}
batch_size = 32
lr = {a.lr}
momentum = 0.9
[server]
listen = 127.0.0.1:{port}
status_listen = 127.0.0.1:{status_port}
enroll = allowlist
poll_s = 5
[tls]
ca = {d}/pki/ca.pem
cert = {d}/pki/server.pem
key = {d}/pki/server.key
[store]
path = {d}/fedc.db
""")
        for k in range(1, a.sites + 1):
            r = subprocess.run([f"{BIN}/fedc-coordinator", "--config", ini, "allow",
                                f"{d}/pki/client-{k}.pem", "--name", f"site-{k}"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"run.py: {r.stderr.strip()}\n(this example needs tensor jobs, "
                         "[model] type = tensors, in fedc-coordinator)")
        log = open(f"{d}/coordinator.log", "ab")
        procs.append(subprocess.Popen([f"{BIN}/fedc-coordinator", "--config", ini],
                                      stdout=log, stderr=log))
        clients = []
        for k in range(1, a.sites + 1):
            cini = f"{d}/client-{k}.ini"
            shard = f"{d}/data/client-{k}"
            with open(cini, "w") as f:
                f.write(f"""[server]
url = https://127.0.0.1:{port}
[tls]
ca = {d}/pki/ca.pem
cert = {d}/pki/client-{k}.pem
key = {d}/pki/client-{k}.key
[client]
name = site-{k}
[trainer]
command = {PY} {HERE}/train.py --images {shard}/train-images.idx --labels {shard}/train-labels.idx
timeout_s = 1800
""")
            clog = open(f"{d}/client-{k}.log", "ab")
            p = subprocess.Popen([f"{BIN}/fedc-client", "--config", cini], stdout=clog,
                                 stderr=clog, env=env)
            procs.append(p)
            clients.append(p)
        print(f"{a.sites} sites x {a.shard} images, {a.rounds} rounds; work folder {d}")
        print("round  test_acc  train_loss  secs   client_peak_rss_mb  trainer_peak_rss_mb")
        done, t_last, rss, trss = 0, time.time(), {}, 0
        while done < a.rounds:
            # the clients leave when the job finishes: read the status once
            # more after that, so the last rounds are printed too
            finished = all(p.poll() is not None for p in clients)
            for p in clients:
                if p.poll() is None:
                    rss[p.pid] = max(rss.get(p.pid, 0), peak_rss_kb(p.pid))
                    todo = children(p.pid)  # the trainer, maybe under a shell
                    while todo:
                        c = todo.pop()
                        trss = max(trss, peak_rss_kb(c))
                        todo += children(c)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/v1/status",
                                            timeout=2) as r:
                    st = json.loads(r.read())
            except OSError:
                if finished:
                    break
                time.sleep(0.5)
                continue
            for row in st.get("rounds", [])[done:]:
                rnd = row["round"]
                path = f"{d}/round-{rnd}.safetensors"
                try:  # the store, read-only, while the coordinator runs
                    with sqlite3.connect(f"file:{d}/fedc.db?mode=ro", uri=True) as con:
                        (blob,) = con.execute("SELECT model FROM checkpoints WHERE round = ?",
                                              (rnd,)).fetchone()
                    with open(path, "wb") as f:
                        f.write(blob)
                except (sqlite3.Error, TypeError):
                    subprocess.run([f"{BIN}/fedc-coordinator", "--config", ini, "export",
                                    str(rnd), path], check=True, capture_output=True)
                acc = subprocess.run([PY, f"{HERE}/evaluate.py", path,
                                      f"{FMNIST}/t10k-images-idx3-ubyte.gz",
                                      f"{FMNIST}/t10k-labels-idx1-ubyte.gz"],
                                     capture_output=True, text=True, env=env).stdout.strip()
                now = time.time()
                print(f"{rnd:5d}  {acc:>8}  {row.get('train_loss') or float('nan'):10.4f}  "
                      f"{row.get('secs') or now - t_last:5.1f}  "
                      f"{max(rss.values() or [0]) / 1024:8.1f}  {trss / 1024:8.1f}", flush=True)
                t_last = now
                done += 1
            if finished:
                break
            time.sleep(0.5)
        codes = [p.wait(timeout=120) for p in clients]
        if any(codes):
            sys.exit(f"run.py: client exit codes {codes}; logs in {d}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
            p.wait()
        if a.keep:
            print(f"work folder kept: {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
