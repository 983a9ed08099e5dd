#!/usr/bin/env python3
"""relay_tests.py - hierarchical aggregation (docs/relays.md) on loopback:
1 root, 2 relays, 6 clients. Every committed model is byte-identical (its
tensors' bytes) to the flat run of the same job, seed and clients (every
client trains every round: clients_per_round = all), the relays having
downloaded the root's models of rounds 2.. as deltas (docs/protocol.md
"Model deltas"); the same when one relay is killed with SIGKILL in the
middle of a round and started again."""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Job, Suite, free_port, read_safetensors  # noqa: E402

ROUNDS = 3
SITES = 6

suite = Suite("relay")
job = Job("relay", SITES + 2, rounds=ROUNDS, clients_per_round=SITES, min_clients=SITES,
          round_timeout_s=40, extra="[strategy]\nmax_client_share = 0\n")


def allow(certs):
    for k in certs:
        r = job.coordinator_cmd("allow", job.pki(f"client-{k}.pem"), "--name", f"n{k}")
        assert r.returncode == 0, r.stderr


def fresh_store(name, clients_per_round):
    job.store = os.path.join(job.dir, name)
    job.port, job.status_port = free_port(), free_port()
    job.cfg.update(clients_per_round=clients_per_round, min_clients=clients_per_round)
    job.write_coordinator_config()


def relay_ini(k, port, sites):
    path = os.path.join(job.dir, f"relay-{k}.ini")
    with open(path, "w") as f:
        f.write(f"""[server]
listen = 127.0.0.1:{port}
idle_timeout_s = 10
[tls]
ca = {job.pki('ca.pem')}
cert = {job.pki('server.pem')}
key = {job.pki('server.key')}
[relay]
parent = https://127.0.0.1:{job.port}
cert = {job.pki(f'client-{k}.pem')}
key = {job.pki(f'client-{k}.key')}
sites = {sites}
""")
    return path


def start_relay(k, port, sites=3, parent=None):
    log = open(os.path.join(job.dir, f"relay-{k}.log"), "ab")
    ini = relay_ini(k, port, sites)
    if parent is not None:
        with open(ini) as f:
            text = f.read().replace(f"parent = https://127.0.0.1:{job.port}",
                                    f"parent = https://127.0.0.1:{parent}")
        with open(ini, "w") as f:
            f.write(text)
    p = subprocess.Popen([os.path.join(BIN, "fedc-coordinator"), "--config", ini, "relay"],
                         stdout=log, stderr=log)
    job.procs.append(p)
    return p


def start_site(k, port):
    path = job.client_ini(k)
    with open(path) as f:
        text = f.read()
    if port is not None:
        text = text.replace(f"url = https://127.0.0.1:{job.port}", f"url = https://127.0.0.1:{port}")
    with open(path, "w") as f:
        f.write(text)
    log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", path], stdout=log, stderr=log)
    job.procs.append(p)
    return p


def tensors(blob):
    """A checkpoint's tensors, name -> (shape, raw bytes): the metadata names the job."""
    return {k: (shape, a.tobytes()) for k, (shape, a) in read_safetensors(blob)[0].items()}


def finish_run(sites):
    job.wait_for(lambda: job.committed() >= ROUNDS, 90, f"{ROUNDS} rounds committed")
    for p in sites:
        p.wait(timeout=30)
    cps = job.checkpoints()
    global root_metrics
    root_metrics = job.metrics()
    job.coordinator.send_signal(signal.SIGTERM)
    job.coordinator.wait(timeout=20)
    return {r: tensors(blob) for r, (blob, _sha) in cps.items()}


def run_flat():
    fresh_store("flat.db", SITES)
    allow(range(1, SITES + 1))
    job.start_coordinator()
    sites = [start_site(k, None) for k in range(1, SITES + 1)]
    return finish_run(sites)


def run_tree(kill=False):
    fresh_store("tree-kill.db" if kill else "tree.db", 2)
    for k in (SITES + 1, SITES + 2):  # each run reads its own relay logs
        log = os.path.join(job.dir, f"relay-{k}.log")
        if os.path.exists(log):
            os.rename(log, log + f".{time.time():.0f}")
    allow([SITES + 1, SITES + 2])
    job.start_coordinator()
    ports = [free_port(), free_port()]
    relays = [start_relay(SITES + 1, ports[0]), start_relay(SITES + 2, ports[1])]
    late = 3 if kill else None  # relay A's last site starts after the kill
    sites = [start_site(k, ports[(k - 1) // 3]) for k in range(1, SITES + 1) if k != late]
    if kill:
        log = os.path.join(job.dir, f"relay-{SITES + 1}.log")

        def two_in_round_one():
            with open(log) as f:
                return f.read().count("round=1 site=") >= 2
        job.wait_for(two_in_round_one, 60, "relay A to take 2 of its 3 updates in round 1")
        relays[0].kill()  # SIGKILL, mid-round: its sum of 2 updates is lost
        relays[0].wait()
        relays[0] = start_relay(SITES + 1, ports[0])
        sites.append(start_site(late, ports[0]))
    out = finish_run(sites)
    for p in relays:
        p.wait(timeout=20)
    return out


flat = {}


def test_flat_run():
    flat.update(run_flat())
    assert len(flat) >= ROUNDS + 1, sorted(flat)


def test_tree_is_bit_identical():
    tree = run_tree()
    assert sorted(tree) == sorted(flat), (sorted(tree), sorted(flat))
    for r in sorted(flat):
        assert tree[r] == flat[r], f"round {r}: the tree's model differs from the flat run's"
    # the relays download rounds 2.. as deltas from the model they hold
    m = re.search(r'^fedc_model_downloads_total\{kind="delta"\} (\d+)$', root_metrics, re.M)
    assert m and int(m.group(1)) >= 2 * (ROUNDS - 1), m and m.group(0)


def test_tree_with_relay_killed_is_bit_identical():
    tree = run_tree(kill=True)
    with open(os.path.join(job.dir, f"relay-{SITES + 1}.log")) as f:
        assert f.read().count("relay listening") == 2, "the relay was not restarted"
    for r in sorted(flat):
        assert tree[r] == flat[r], f"round {r}: after the kill the model differs from the flat run's"


def test_nested_relays_are_bit_identical():
    """root <- relay A (sites: relay B, clients 4-6) <- relay B (clients 1-3)."""
    fresh_store("nested.db", 1)
    allow([SITES + 1])
    job.start_coordinator()
    ports = [free_port(), free_port()]
    relays = [start_relay(SITES + 1, ports[0], sites=4),
              start_relay(SITES + 2, ports[1], sites=3, parent=ports[0])]
    sites = [start_site(k, ports[0] if k > 3 else ports[1]) for k in range(1, SITES + 1)]
    tree = finish_run(sites)
    for p in relays:
        p.wait(timeout=20)
    with open(os.path.join(job.dir, f"relay-{SITES + 1}.log")) as f:
        assert "from=relay" in f.read(), "relay A took no partial from relay B"
    for r in sorted(flat):
        assert tree[r] == flat[r], f"round {r}: the nested tree's model differs from the flat run's"


def test_relay_refuses_what_it_cannot_forward():
    path = relay_ini(SITES + 1, free_port(), 3)
    r = subprocess.run([os.path.join(BIN, "fedc-coordinator"), "--config", path,
                        "--set", "strategy.norm_bound=1", "relay"], capture_output=True, text=True)
    assert r.returncode == 2 and "norm_bound" in r.stderr, (r.returncode, r.stderr)


try:
    for t in (test_flat_run, test_tree_is_bit_identical, test_tree_with_relay_killed_is_bit_identical,
              test_nested_relays_are_bit_identical, test_relay_refuses_what_it_cannot_forward):
        suite.run(t)
finally:
    job.close(keep=suite.failed > 0 or bool(os.environ.get("KEEP")))
suite.finish()
