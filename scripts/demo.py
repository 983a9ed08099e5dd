#!/usr/bin/env python3
"""demo.py - `make demo`: a real federated training on this machine.

Makes a development PKI, gives 4 client folders their own Fashion-MNIST
shards, starts fedc-coordinator and 4 fedc-client processes on 127.0.0.1
(mutual TLS), and shows the job's progress round by round from the
coordinator's /v1/status. At the end it prints the final test accuracy,
where the dashboard is, and leaves the sqlite store behind.

Environment: FEDC_BUILD (build folder), FEDC_DEMO_DIR (default
build/demo), FEDC_DEMO_PORT and FEDC_DEMO_STATUS_PORT (default: free ports
the system picks, so that a coordinator already running on this machine,
e.g. on 8443 and 8080, is never the one the demo's clients reach),
FEDC_DEMO_ROUNDS (20).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("FEDC_BUILD", "build")
BIN = BUILD if os.path.isabs(BUILD) else os.path.join(ROOT, BUILD)
BIN = os.path.join(BIN, "bin")
DEMO = os.path.abspath(os.environ.get("FEDC_DEMO_DIR", os.path.join(ROOT, "build", "demo")))


def free_port():
    """A port nobody listens on now, on 127.0.0.1."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


PORT = int(os.environ.get("FEDC_DEMO_PORT") or free_port())
STATUS_PORT = int(os.environ.get("FEDC_DEMO_STATUS_PORT") or free_port())
ROUNDS = int(os.environ.get("FEDC_DEMO_ROUNDS", "20"))
FMNIST = "/usr/share/datasets/fashion-mnist"
N = 4
TTY = sys.stdout.isatty()


def say(msg):
    print(f"fedc demo: {msg}", flush=True)


def main():
    os.makedirs(DEMO, exist_ok=True)
    pki = os.path.join(DEMO, "pki")
    subprocess.run([os.path.join(ROOT, "certs/make-certs.sh"), pki, str(N)], check=True)
    sizes = [15000] * N
    subprocess.run([sys.executable, os.path.join(ROOT, "tests/tools/split_idx.py"),
                    f"{FMNIST}/train-images-idx3-ubyte.gz", f"{FMNIST}/train-labels-idx1-ubyte.gz",
                    os.path.join(DEMO, "data")] + [str(s) for s in sizes], check=True)
    store = os.path.join(DEMO, "fedc.db")
    for suffix in ("", "-wal", "-shm"):  # a fresh job each time
        if os.path.exists(store + suffix):
            os.remove(store + suffix)
    coord_ini = os.path.join(DEMO, "coordinator.ini")
    with open(coord_ini, "w") as f:
        f.write(f"""; the demo's coordinator (made by scripts/demo.py)
[job]
rounds = {ROUNDS}
clients_per_round = {N}
min_clients = 3
round_timeout_s = 30
seed = 1
[model]
type = softmax
inputs = 784
classes = 10
[train]
epochs = 1
batch_size = 32
lr = 0.05
[server]
listen = 127.0.0.1:{PORT}
status_listen = 127.0.0.1:{STATUS_PORT}
enroll = allowlist
poll_s = 5
[tls]
ca = {pki}/ca.pem
cert = {pki}/server.pem
key = {pki}/server.key
[store]
path = {store}
[data]
test = {FMNIST}/t10k-images-idx3-ubyte.gz
test_labels = {FMNIST}/t10k-labels-idx1-ubyte.gz
""")
    coordinator = os.path.join(BIN, "fedc-coordinator")
    for k in range(1, N + 1):
        subprocess.run([coordinator, "--config", coord_ini, "allow", f"{pki}/client-{k}.pem",
                        "--name", f"hospital-{k}"], check=True, stdout=subprocess.DEVNULL)
    procs = []
    logs = os.path.join(DEMO, "logs")
    os.makedirs(logs, exist_ok=True)
    coord = subprocess.Popen([coordinator, "--config", coord_ini],
                             stdout=open(os.path.join(logs, "coordinator.log"), "w"),
                             stderr=subprocess.STDOUT)
    procs.append(coord)
    try:
        status = wait_status(coord)
        say(f"coordinator on https://127.0.0.1:{PORT} (mutual TLS), job {status['job']['id'][:8]}, "
            f"{ROUNDS} rounds, {N} clients, each with {sizes[0]} private images")
        for k in range(1, N + 1):
            ini = os.path.join(DEMO, f"client-{k}.ini")
            d = os.path.join(DEMO, "data", f"client-{k}")
            with open(ini, "w") as f:
                f.write(f"""[server]
url = https://127.0.0.1:{PORT}
[tls]
ca = {pki}/ca.pem
cert = {pki}/client-{k}.pem
key = {pki}/client-{k}.key
[data]
format = idx
train = {d}/train-images.idx
train_labels = {d}/train-labels.idx
test =
[client]
name = hospital-{k}
""")
            procs.append(subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", ini],
                                          stdout=open(os.path.join(logs, f"client-{k}.log"), "w"),
                                          stderr=subprocess.STDOUT))
        final = follow(coord, procs[1:])
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    rounds = final["rounds"]
    if not rounds or len(rounds) < ROUNDS:
        say(f"the job did not finish; logs in {logs}")
        return 1
    last = rounds[-1]
    print()
    say(f"finished {len(rounds)} rounds; final test accuracy {last['test_acc']:.4f} "
        f"(test loss {last['test_loss']:.4f}) on the 10,000 Fashion-MNIST test images")
    say(f"the job's state is in {store} (sqlite; rounds, checkpoints, clients)")
    say(f"dashboard: run `{os.path.relpath(coordinator, ROOT)} --config "
        f"{os.path.relpath(coord_ini, ROOT)}` and open http://127.0.0.1:{STATUS_PORT}/")
    say(f"  (while it ran it was at http://127.0.0.1:{STATUS_PORT}/ ; logs in {os.path.relpath(logs, ROOT)})")
    return 0


def get_status():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{STATUS_PORT}/v1/status", timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def wait_status(coord):
    for _ in range(200):
        if coord.poll() is not None:
            sys.exit(f"fedc demo: the coordinator exited ({coord.returncode}); see {DEMO}/logs")
        s = get_status()
        if s:
            return s
        time.sleep(0.05)
    sys.exit("fedc demo: the coordinator did not start")


def follow(coord, clients):
    shown = 0
    start = time.time()
    while True:
        s = get_status() or {"rounds": [], "round": 0, "state": "?"}
        for r in s["rounds"][shown:]:
            line = (f"round {r['round']:>3}/{ROUNDS}  test_acc {r['test_acc']:.4f}  "
                    f"test_loss {r['test_loss']:.4f}  train_loss {r['train_loss']:.4f}  "
                    f"clients {r['clients']}  {r['secs']:.2f}s")
            print(line, flush=True)
        shown = len(s["rounds"])
        if TTY and s["state"] != "finished":
            print(f"\r\033[K  round {s['round']}: {s['state']}, {s.get('reported', 0)}/"
                  f"{s.get('selected', 0)} updates in, {time.time() - start:.0f}s", end="", flush=True)
        if s["state"] == "finished" or all(p.poll() is not None for p in clients):
            if TTY:
                print("\r\033[K", end="")
            return get_status() or s
        if coord.poll() is not None:
            return s
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
