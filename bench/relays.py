#!/usr/bin/env python3
"""relays.py - the root coordinator's cost per round with relays against
flat (docs/relays.md), run by bench/relays.sh.

For each model (the Fashion-MNIST softmax, 784 -> 10, and MLP, 784-200-200-10)
and each shape, one job of ROUNDS rounds on loopback with CLIENTS simulated
clients (fedc-load rounds, every client trains every round):

  flat     one coordinator, clients_per_round = CLIENTS
  relayed  the root with RELAYS relays (fedc-coordinator relay, sites =
           CLIENTS / RELAYS each), clients_per_round = RELAYS; the clients
           connect to the relays in equal blocks (fedc-load --sites)

Only the root process is measured. A monitor thread reads the root's log
(its stderr, copied to a file) and, the moment a commit line arrives,
samples the root's CPU time (/proc/<pid>/stat utime + stime) and
/proc/<pid>/io (rchar, wchar: every read and write syscall, TLS records
and the store included). A round's figures are the differences between
two commits; round 1 (which also carries the clients' handshakes and
joins) is printed apart, and the table gives the median over rounds
2..ROUNDS. The root's own HTTP byte counters (/metrics
fedc_api_bytes_received_total and fedc_api_bytes_sent_total: the TLS
listener) are read before the clients start and after the last commit and
given per round as a check (a poll of /metrics during the round would
answer late on a busy root, so it cannot time a round).

Last, the committed models of the two shapes are compared tensor by tensor,
byte for byte, for every round: relays forward exact fixed-point sums, so
they must be identical. Exit 0 when every run finished and every model
matched, 1 otherwise.
"""
import json
import os
import re
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BUILD = os.environ["FEDC_BUILD_ABS"]
ROOT_DIR = os.environ["FEDC_ROOT"]
CLIENTS = int(os.environ.get("FEDC_RELAY_CLIENTS", "1000"))
RELAYS = int(os.environ.get("FEDC_RELAY_RELAYS", "10"))
ROUNDS = int(os.environ.get("FEDC_RELAY_ROUNDS", "4"))
THREADS = int(os.environ.get("FEDC_RELAY_THREADS", "2"))
MODELS = os.environ.get("FEDC_RELAY_MODELS", "softmax mlp").split()
COORD = os.path.join(BUILD, "bin", "fedc-coordinator")
LOAD = os.path.join(BUILD, "bin", "fedc-load")
TICK = os.sysconf("SC_CLK_TCK")

MODEL_INI = {
    "softmax": "type = softmax\ninputs = 784\nclasses = 10\n",
    "mlp": "type = mlp\ninputs = 784\nhidden = 200,200\nclasses = 10\n",
}


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def proc_io(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                k, v = line.split(":")
                out[k] = int(v)
    except OSError:  # not readable here: left out of the table
        return None
    return out


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = {}
    for line in text.splitlines():
        g = re.match(r"^(fedc_[a-z_]+) ([0-9.e+-]+)$", line)
        if g:
            m[g.group(1)] = float(g.group(2))
    return m


class Monitor(threading.Thread):
    """Reads the root's log from its stderr (copied to a file) and samples
    the root at each commit line, the moment it is written."""

    def __init__(self, proc, log_path):
        super().__init__(daemon=True)
        self.proc, self.log = proc, open(log_path, "ab")
        self.samples = []  # (committed, cpu_s, rchar, wchar, t)
        self.committed = 0

    def sample(self):
        io = proc_io(self.proc.pid) or {}
        self.samples.append((self.committed, cpu_s(self.proc.pid), io.get("rchar"),
                             io.get("wchar"), time.monotonic()))

    def run(self):
        for line in self.proc.stderr:
            if b'msg="committed"' in line:
                self.committed += 1
                self.sample()
            self.log.write(line)
        self.log.close()

    def rounds(self):
        """Per round k (1..): cpu s, rchar, wchar, secs from commit k-1 to k
        (round 1: from before any client connected)."""
        by = {s[0]: s for s in self.samples}
        out = {}
        for k in sorted(by):
            if k >= 1 and (k - 1) in by:
                a, b = by[k - 1], by[k]
                out[k] = [b[i] - a[i] if b[i] is not None and a[i] is not None else None
                          for i in range(1, 5)]
        return out


def wait_listening(port, proc, log):
    for _ in range(200):
        try:
            metrics(port)
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    sys.exit(f"relays: the coordinator did not start; {log}:\n" + open(log).read()[-2000:])


def server_keys():
    # a simulated federation of 1,000 sites on one address: no per-source limits
    return """idle_timeout_s = 3600
max_conns_per_source = 0
handshake_rate = 0
poll_s = 10
over_select = 1.0
max_body_mb = 16
"""


def root_ini(tmp, name, model, cpr, port, sport):
    path = os.path.join(tmp, f"{name}.ini")
    with open(path, "w") as f:
        f.write(f"""[job]
rounds = {ROUNDS}
clients_per_round = {cpr}
min_clients = {cpr}
round_timeout_s = 600
seed = 1
[model]
{MODEL_INI[model]}[strategy]
max_client_share = 0
[server]
listen = 127.0.0.1:{port}
status_listen = 127.0.0.1:{sport}
enroll = open
{server_keys()}[tls]
ca = {tmp}/pki/ca.pem
cert = {tmp}/pki/server.pem
key = {tmp}/pki/server.key
[store]
path = {tmp}/{name}.db
[data]
test =
""")
    return path


def relay_ini(tmp, name, k, port, root_port, sites):
    path = os.path.join(tmp, f"{name}-relay-{k}.ini")
    with open(path, "w") as f:
        f.write(f"""[server]
listen = 127.0.0.1:{port}
{server_keys()}[tls]
ca = {tmp}/pki/ca.pem
cert = {tmp}/pki/server.pem
key = {tmp}/pki/server.key
[relay]
parent = https://127.0.0.1:{root_port}
cert = {tmp}/pki/client-{k}.pem
key = {tmp}/pki/client-{k}.key
sites = {sites}
""")
    return path


def st_tensors(blob):
    """A safetensors blob's tensors, name -> (dtype, shape, raw bytes); the
    metadata (which names the round and the job) is left out."""
    n = struct.unpack("<Q", blob[:8])[0]
    head = json.loads(blob[8:8 + n])
    base = 8 + n
    return {k: (v["dtype"], tuple(v["shape"]), blob[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
            for k, v in head.items() if k != "__metadata__"}


def run(tmp, model, shape, procs):
    name = f"{model}-{shape}"
    port, sport = free_port(), free_port()
    cpr = CLIENTS if shape == "flat" else RELAYS
    log = os.path.join(tmp, f"{name}.log")
    root = subprocess.Popen([COORD, "--config", root_ini(tmp, name, model, cpr, port, sport)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    procs.append(root)
    mon = Monitor(root, log)
    mon.start()
    wait_listening(sport, root, log)
    mon.sample()  # round 1 starts here
    m0 = metrics(sport)
    relays, sites = [], []
    if shape == "relayed":
        per = CLIENTS // RELAYS
        for k in range(1, RELAYS + 1):
            rp = free_port()
            rlog = os.path.join(tmp, f"{name}-relay-{k}.log")
            p = subprocess.Popen([COORD, "--config", relay_ini(tmp, name, k, rp, port, per), "relay"],
                                 stdout=open(rlog, "ab"), stderr=subprocess.STDOUT)
            procs.append(p)
            relays.append(p)
            sites.append(rp)
        time.sleep(1.0)  # the relays listen and join the root
    cmd = [LOAD, "rounds", "--port", str(port), "--ca", f"{tmp}/pki/ca.pem",
           "--ca-key", f"{tmp}/pki/ca.key", "--cert", f"{tmp}/pki/client-{RELAYS + 1}.pem",
           "--key", f"{tmp}/pki/client-{RELAYS + 1}.key", "--clients", str(CLIENTS),
           "--threads", str(THREADS), "--timeout-s", "900"]
    if sites:
        cmd += ["--sites", ",".join(map(str, sites))]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    deadline = time.monotonic() + 30
    while mon.committed < ROUNDS and time.monotonic() < deadline:
        time.sleep(0.05)
    m1 = metrics(sport)
    api = [(m1[k] - m0[k]) / max(mon.committed, 1)
           for k in ("fedc_api_bytes_received_total", "fedc_api_bytes_sent_total")]
    for p in relays + [root]:
        p.terminate()
        p.wait(timeout=30)
    mon.join()
    ok = r.returncode == 0 and mon.committed >= ROUNDS
    if not ok:
        print(f"  {name}: fedc-load exited {r.returncode}; committed "
              f"{mon.committed} of {ROUNDS} rounds\n{r.stderr[-1500:]}")
    with sqlite3.connect(f"{tmp}/{name}.db") as con:
        cps = {rd: st_tensors(blob) for rd, blob in
               con.execute("SELECT round, model FROM checkpoints ORDER BY round")}
    return ok, mon.rounds(), api, cps, wall


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt_mb(v):
    return "n/a" if v is None else f"{v / 1e6:.2f}"


def main():
    tmp = tempfile.mkdtemp(prefix="fedc-relays.")
    subprocess.run([os.path.join(ROOT_DIR, "certs", "make-certs.sh"), f"{tmp}/pki",
                    str(RELAYS + 1)], check=True, stderr=subprocess.DEVNULL)
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print(f"fedc relays benchmark: {CLIENTS} simulated clients (fedc-load, {THREADS} threads), "
          f"{ROUNDS} rounds, every client trains every round")
    print(f"  flat: one coordinator, {CLIENTS} clients; relayed: root <- {RELAYS} relays "
          f"<- {CLIENTS // RELAYS} clients each (one level)")
    print(f"  machine: {cpu}, {os.cpu_count()} cores, load average "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}")
    print("  root process only; per round = between two commits (sampled at the root's commit "
          f"log line); medians over rounds 2..{ROUNDS};")
    print("  rchar/wchar: /proc/<pid>/io (every read/write: TLS records, the store); api in/out: "
          "/metrics HTTP bytes, whole run / rounds; MB = 1e6 bytes")
    procs = []
    status = 0
    rows = []
    try:
        for model in MODELS:
            res = {}
            for shape in ("flat", "relayed"):
                ok, rounds, api, cps, wall = run(tmp, model, shape, procs)
                status |= 0 if ok else 1
                res[shape] = cps
                steady = [rounds[k] for k in sorted(rounds) if k >= 2]
                r1 = rounds.get(1)
                row = (model, shape, med([d[1] for d in steady]), med([d[2] for d in steady]),
                       api[0], api[1], med([d[0] for d in steady]), med([d[3] for d in steady]),
                       r1[0] if r1 else None, wall)
                rows.append(row)
                print(f"  {model} {shape}: per round (rchar MB, wchar MB, cpu s, secs) " +
                      "; ".join(f"r{k} {fmt_mb(d[1])} {fmt_mb(d[2])} {d[0]:.2f} {d[3]:.1f}"
                                for k, d in sorted(rounds.items())), flush=True)
            same = (sorted(res["flat"]) == sorted(res["relayed"]) and len(res["flat"]) >= ROUNDS
                    and all(res["flat"][k] == res["relayed"][k] for k in res["flat"]))
            rows.append((model, "identical", same))
            if not same:
                status = 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print()
    print("model    shape     rchar MB  wchar MB  api in MB  api out MB  cpu s/round  "
          "s/round  round 1 cpu s  run s")
    for row in rows:
        if row[1] == "identical":
            print(f"{row[0]:<8} committed models, every round, flat vs relayed: "
                  f"{'bit-identical' if row[2] else 'DIFFERENT'}")
            continue
        model, shape, rc, wc, i, o, c, s, c1, wall = row
        print(f"{model:<8} {shape:<8} {fmt_mb(rc):>9} {fmt_mb(wc):>9} {fmt_mb(i):>10} "
              f"{fmt_mb(o):>11} {c if c is not None else float('nan'):>12.3f} "
              f"{s if s is not None else float('nan'):>8.2f} "
              f"{c1 if c1 is not None else float('nan'):>14.2f} {wall:>6.1f}")
    subprocess.run(["rm", "-rf", tmp])
    return status


if __name__ == "__main__":
    sys.exit(main())
