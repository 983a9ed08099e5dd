"""harness.py - real fedc processes on loopback for the integration tests.

Makes a development PKI (certs/make-certs.sh), gives each client its own
Fashion-MNIST shard (tests/tools/split_idx.py), writes the coordinator's and
the clients' config files, starts and kills the real binaries, and reads
the coordinator's sqlite store and safetensors files with the standard
library only. Every process it starts is killed when the test ends.
"""
import array
import glob
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("FEDC_BUILD", "build")
BIN = os.path.join(ROOT, BUILD, "bin") if not os.path.isabs(BUILD) else os.path.join(BUILD, "bin")
FMNIST = "/usr/share/datasets/fashion-mnist"


def mem_kb(pid, field):
    """A /proc/PID/status memory field in KiB ("VmRSS", "VmHWM")."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_port_rng = random.Random(os.getpid() * 7919 + int(time.time() * 1e6))


def free_port():
    """A port free now, taken below the kernel's ephemeral range.

    bind(0) hands out ports from the ephemeral range, the same range every
    outgoing connection on the machine draws its local port from: between
    this pick and the coordinator's bind, another suite's client could take
    it ("Address already in use"). Below that range only listeners bind, so
    the pick can only race another suite's pick, drawn at random from some
    ten thousand ports."""
    lo, _ = _ephemeral_range()
    top = lo - 1 if lo > 12000 else 60999
    for _ in range(200):
        port = _port_rng.randint(10000, top)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        return port
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_safetensors(blob):
    """(tensors: name -> (shape, array('f')), metadata) from bytes."""
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        arr = array.array("f")
        arr.frombytes(data[a:b])
        if sys.byteorder != "little":
            arr.byteswap()
        out[name] = (t["shape"], arr)
    return out, meta


def flat(tensors):
    """The flat parameter vector in fedc's layer order."""
    names = sorted(tensors, key=lambda s: (int(s.split(".")[1]), s.endswith("bias")))
    v = array.array("f")
    for name in names:
        v.extend(tensors[name][1])
    return v


class Job:
    def __init__(self, name, n_clients, sizes=None, **cfg):
        self.dir = tempfile.mkdtemp(prefix=f"fedc-it-{name}-")
        self.procs = []
        self.port = free_port()
        self.status_port = free_port()
        self.n = n_clients
        subprocess.run([os.path.join(ROOT, "certs/make-certs.sh"), os.path.join(self.dir, "pki"),
                        str(n_clients)], check=True, capture_output=True)
        sizes = sizes or [300] * n_clients
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/tools/split_idx.py"),
                        f"{FMNIST}/train-images-idx3-ubyte.gz", f"{FMNIST}/train-labels-idx1-ubyte.gz",
                        os.path.join(self.dir, "data")] + [str(s) for s in sizes],
                       check=True, capture_output=True)
        self.store = os.path.join(self.dir, "fedc.db")
        self.cfg = dict(rounds=5, clients_per_round=n_clients, min_clients=n_clients,
                        round_timeout_s=20, over_select=1.0, poll_s=2, test="", enroll="allowlist",
                        model="softmax", hidden="", epochs=1, extra="")
        self.cfg.update(cfg)
        self.write_coordinator_config()

    # ---- configs -------------------------------------------------------------
    def pki(self, name):
        return os.path.join(self.dir, "pki", name)

    def write_coordinator_config(self):
        c = self.cfg
        test = (f"test = {FMNIST}/t10k-images-idx3-ubyte.gz\n"
                f"test_labels = {FMNIST}/t10k-labels-idx1-ubyte.gz\n") if c["test"] else "test =\n"
        self.coord_ini = os.path.join(self.dir, "coordinator.ini")
        with open(self.coord_ini, "w") as f:
            f.write(f"""[job]
rounds = {c['rounds']}
clients_per_round = {c['clients_per_round']}
min_clients = {c['min_clients']}
round_timeout_s = {c['round_timeout_s']}
seed = 7
[model]
type = {c['model']}
hidden = {c['hidden']}
inputs = 784
classes = 10
[train]
epochs = {c['epochs']}
batch_size = 32
lr = 0.05
[server]
listen = 127.0.0.1:{self.port}
status_listen = 127.0.0.1:{self.status_port}
enroll = {c['enroll']}
poll_s = {c['poll_s']}
over_select = {c['over_select']}
idle_timeout_s = 10
[tls]
ca = {self.pki('ca.pem')}
cert = {self.pki('server.pem')}
key = {self.pki('server.key')}
[store]
path = {self.store}
[data]
{test}{c['extra']}
""")

    def client_ini(self, k, cert=None, keep=True):
        d = os.path.join(self.dir, "data", f"client-{k}")
        path = os.path.join(self.dir, f"client-{k}.ini")
        cert = cert or f"client-{k}"
        keep_dir = os.path.join(self.dir, f"updates-{k}") if keep else ""
        with open(path, "w") as f:
            f.write(f"""[server]
url = https://127.0.0.1:{self.port}
[tls]
ca = {self.pki('ca.pem')}
cert = {self.pki(cert + '.pem')}
key = {self.pki(cert + '.key')}
[data]
format = idx
train = {d}/train-images.idx
train_labels = {d}/train-labels.idx
test =
[client]
name = site-{k}
keep_updates = {keep_dir}
backoff_max_s = 1
give_up_s = 60
""")
        return path

    def set_server_keys(self, **kv):
        """Add [server] keys to the coordinator's config (before it starts)."""
        with open(self.coord_ini) as f:
            text = f.read()
        add = "".join(f"{k} = {v}\n" for k, v in kv.items())
        with open(self.coord_ini, "w") as f:
            f.write(text.replace("[server]\n", "[server]\n" + add, 1))

    # ---- processes -------------------------------------------------------------
    def coordinator_cmd(self, *args):
        return subprocess.run([os.path.join(BIN, "fedc-coordinator"), "--config", self.coord_ini]
                              + list(args), capture_output=True, text=True)

    def allow_all(self):
        for k in range(1, self.n + 1):
            r = self.coordinator_cmd("allow", self.pki(f"client-{k}.pem"), "--name", f"site-{k}")
            assert r.returncode == 0, r.stderr

    def start_coordinator(self, env=None):
        """env: extra environment variables for the coordinator."""
        for attempt in range(3):
            log = open(os.path.join(self.dir, "coordinator.log"), "ab")
            start = log.tell()
            p = subprocess.Popen([os.path.join(BIN, "fedc-coordinator"), "--config", self.coord_ini],
                                 stdout=log, stderr=log, env=dict(os.environ, **(env or {})))
            self.procs.append(p)
            self.coordinator = p
            self.wait_for(lambda: self.status() is not None or p.poll() is not None, 10,
                          "coordinator to listen")
            if self.status() is not None or not self._lost_port_race(start):
                break
        self.wait_for(lambda: self.status() is not None, 10, "coordinator to listen")
        return p

    def _lost_port_race(self, log_offset):
        """True when the coordinator just exited because its port was taken
        and no client was pointed at the ports yet: then both ports are
        drawn again (in the config file as written) and the start retried."""
        if self.coordinator.poll() is None or any(p is not self.coordinator and
                                                  p.args[0].endswith("fedc-client")
                                                  for p in self.procs):
            return False
        with open(os.path.join(self.dir, "coordinator.log"), "rb") as f:
            f.seek(log_offset)
            if b"Address already in use" not in f.read():
                return False
        text = open(self.coord_ini).read()
        port, status_port = free_port(), free_port()
        text = text.replace(f"127.0.0.1:{self.port}", f"127.0.0.1:{port}") \
                   .replace(f"127.0.0.1:{self.status_port}", f"127.0.0.1:{status_port}")
        with open(self.coord_ini, "w") as f:
            f.write(text)
        self.port, self.status_port = port, status_port
        return True

    def start_client(self, k, env=None, **kw):
        """env: extra environment variables for this client."""
        log = open(os.path.join(self.dir, f"client-{k}.log"), "ab")
        p = subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", self.client_ini(k, **kw)],
                             stdout=log, stderr=log, env=dict(os.environ, **(env or {})))
        self.procs.append(p)
        return p

    def status(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/v1/status", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/metrics", timeout=2) as r:
            return r.read().decode()

    def wait_for(self, cond, timeout, what):
        end = time.time() + timeout
        while time.time() < end:
            v = cond()
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; logs in {self.dir}")

    def committed(self):
        s = self.status()
        return len(s["rounds"]) if s else 0

    def tls_connection(self, cert="client-1"):
        ctx = ssl.create_default_context(cafile=self.pki("ca.pem"))
        if cert:
            ctx.load_cert_chain(self.pki(cert + ".pem"), self.pki(cert + ".key"))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10)

    def request(self, method, path, body=None, cert="client-1", headers=None):
        conn = self.tls_connection(cert)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    # ---- the store ---------------------------------------------------------------
    def db(self):
        return sqlite3.connect(f"file:{self.store}?mode=ro", uri=True)

    def checkpoints(self):
        """round -> (model bytes, sha256); a checkpoint kept in chunk rows
        (an empty blob; docs/operations.md) is joined from them."""
        with self.db() as con:
            out = {}
            for r, blob, sha in con.execute("SELECT round, model, sha256 FROM checkpoints "
                                            "ORDER BY round"):
                if not blob:
                    blob = b"".join(c for (c,) in con.execute(
                        "SELECT bytes FROM checkpoint_chunks WHERE round = ? ORDER BY seq",
                        (r,)))
                out[r] = (blob, sha)
            return out

    def updates_of(self, rnd):
        with self.db() as con:
            return list(con.execute("SELECT client_id, num_samples, sha256 FROM updates "
                                    "WHERE round = ? ORDER BY client_id", (rnd,)))

    def client_ids(self):
        with self.db() as con:
            return {fp: cid for cid, fp in con.execute("SELECT id, fingerprint FROM clients")}

    def fingerprint(self, k):
        with open(self.pki(f"client-{k}.fpr")) as f:
            return f.read().strip()

    def kept_update(self, k, rnd):
        path = os.path.join(self.dir, f"updates-{k}", f"round-{rnd}.safetensors")
        with open(path, "rb") as f:
            return f.read()

    def close(self, keep=False):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class Skip(Exception):
    """Raised by a test that cannot run here (a tool, a device or a
    permission missing): the case is counted as skipped, never passed."""


SKIP_RC = 77  # a suite with nothing run: skipped (scripts/run-tests.sh)


class Suite:
    """A tiny runner: each test a function; prints ok/FAIL/skip and a closing
    line "NAME: N passed, N failed, N skipped" that scripts/run-tests.sh
    reads; exits 1 on a failure, 77 when every case was skipped, else 0."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def run(self, fn):
        t0 = time.time()
        try:
            fn()
            self.passed += 1
            print(f"  ok   {fn.__name__} ({time.time() - t0:.1f}s)", flush=True)
        except Skip as e:
            self.skipped += 1
            print(f"  skip {fn.__name__}: {e}", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            self.failed += 1
            print(f"  FAIL {fn.__name__}: {type(e).__name__}: {e}", flush=True)

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed, "
              f"{self.skipped} skipped", flush=True)
        if self.failed:
            sys.exit(1)
        sys.exit(SKIP_RC if self.skipped and not self.passed else 0)
