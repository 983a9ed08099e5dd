#!/usr/bin/env python3
"""relay_secagg_tests.py - secure aggregation within relays' subtrees
(docs/relays.md, "Secure aggregation") on loopback, mutual TLS on every
link:

1. The same job with [privacy] secure_aggregation = true run flat (6 sites)
   and as 1 root, 2 relays and 6 sites (3 per relay): every committed model
   is byte-identical to the flat run's (its tensors' bytes). Each relay runs
   a secure session of its own with its sites and takes part in the root's
   round as one party whose input is its subtree's sum.
2. What a relay received from a site (the relay's FEDC_SECAGG_DEBUG_DIR
   dump) is not the site's update: no word equals the site's quantized
   weighted delta or its float bits.
3. A site killed (kill -9) after it shared its keys with its relay (4 sites
   under relay A, 2 under relay B): the relay recovers inside its own
   session, and the root's committed model is the plain sample-weighted
   average of the 5 survivors' updates within 2^-(f+1) per weight.
4. A relay killed (kill -9) after it shared its keys with the root: a party
   that dropped; the root (2 parties) abandons the round and opens it
   again, and every committed model is still the flat secure run's.
5. Refused: a relay under a relay of a secure job (nested relays), and a
   relay with [privacy] noise_multiplier.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Job, Suite, flat, free_port, read_safetensors  # noqa: E402
from secagg_tests import f32, read_u32  # noqa: E402

ROUNDS = 3
SITES = 6
SECURE = "[privacy]\nsecure_aggregation = true\nsecagg_threshold = 0.6\n"

suite = Suite("relay_secagg")
job = Job("relay-secagg", SITES + 2, rounds=ROUNDS, clients_per_round=SITES, min_clients=SITES,
          round_timeout_s=20, extra=SECURE)
times = {}


def allow(certs):
    for k in certs:
        r = job.coordinator_cmd("allow", job.pki(f"client-{k}.pem"), "--name", f"n{k}")
        assert r.returncode == 0, r.stderr


def fresh_store(name, clients_per_round, rounds=ROUNDS):
    job.store = os.path.join(job.dir, name)
    job.port, job.status_port = free_port(), free_port()
    job.cfg.update(clients_per_round=clients_per_round, min_clients=clients_per_round,
                   rounds=rounds)
    job.write_coordinator_config()


def start_relay(k, port, sites, env=None, parent=None):
    ini = os.path.join(job.dir, f"relay-{k}.ini")
    with open(ini, "w") as f:
        f.write(f"""[server]
listen = 127.0.0.1:{port}
idle_timeout_s = 10
[tls]
ca = {job.pki('ca.pem')}
cert = {job.pki('server.pem')}
key = {job.pki('server.key')}
[relay]
parent = https://127.0.0.1:{parent or job.port}
cert = {job.pki(f'client-{k}.pem')}
key = {job.pki(f'client-{k}.key')}
sites = {sites}
[privacy]
secure_aggregation = true
""")
    log = open(os.path.join(job.dir, f"relay-{k}.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "fedc-coordinator"), "--config", ini, "relay"],
                         stdout=log, stderr=log, env=dict(os.environ, **(env or {})))
    job.procs.append(p)
    return p


def start_site(k, port, env=None):
    path = job.client_ini(k)
    if port is not None:
        with open(path) as f:
            text = f.read().replace(f"url = https://127.0.0.1:{job.port}",
                                    f"url = https://127.0.0.1:{port}")
        with open(path, "w") as f:
            f.write(text)
    log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", path], stdout=log,
                         stderr=log, env=dict(os.environ, **(env or {})))
    job.procs.append(p)
    return p


def tensors(blob):
    return {k: (shape, a.tobytes()) for k, (shape, a) in read_safetensors(blob)[0].items()}


def finish_run(sites, rounds=ROUNDS):
    job.wait_for(lambda: job.committed() >= rounds, 120, f"{rounds} rounds committed")
    for p in sites:
        p.wait(timeout=30)
    cps = job.checkpoints()
    job.coordinator.send_signal(signal.SIGTERM)
    job.coordinator.wait(timeout=20)
    return cps


def relay_log(k):
    with open(os.path.join(job.dir, f"relay-{k}.log")) as f:
        return f.read()


flat_models = {}


def test_flat_secure_run():
    fresh_store("flat.db", SITES)
    allow(range(1, SITES + 1))
    t0 = time.time()
    job.start_coordinator()
    sites = [start_site(k, None) for k in range(1, SITES + 1)]
    cps = finish_run(sites)
    times["flat"] = time.time() - t0
    flat_models.update({r: tensors(blob) for r, (blob, _sha) in cps.items()})
    assert len(flat_models) >= ROUNDS + 1, sorted(flat_models)


def test_tree_secure_is_bit_identical():
    fresh_store("tree.db", 2)
    allow([SITES + 1, SITES + 2])
    debug = os.path.join(job.dir, "relay-masked")
    os.makedirs(debug, exist_ok=True)
    t0 = time.time()
    job.start_coordinator()
    ports = [free_port(), free_port()]
    env = {"FEDC_SECAGG_DEBUG_DIR": debug}
    relays = [start_relay(SITES + 1, ports[0], 3, env), start_relay(SITES + 2, ports[1], 3, env)]
    sites = [start_site(k, ports[(k - 1) // 3]) for k in range(1, SITES + 1)]
    cps = finish_run(sites)
    times["tree"] = time.time() - t0
    for p in relays:
        p.wait(timeout=20)
    tree = {r: tensors(blob) for r, (blob, _sha) in cps.items()}
    assert sorted(tree) == sorted(flat_models), (sorted(tree), sorted(flat_models))
    for r in sorted(flat_models):
        assert tree[r] == flat_models[r], f"round {r}: the secure tree's model differs from flat"
    for k in (SITES + 1, SITES + 2):
        log = relay_log(k)
        assert log.count("relay: secure round done") == ROUNDS, log[-2000:]
        assert "partial sum posted" not in log, "a relay posted a plain partial sum"
    print(f"       {ROUNDS} rounds, {len(tree)} models byte-identical to the flat secure run; "
          f"flat {times['flat']:.1f} s, tree {times['tree']:.1f} s")

    # what the relays received from their sites is not any site's update
    import glob
    g = flat(read_safetensors(cps[0][0])[0])
    dumps = sorted(glob.glob(os.path.join(debug, "relay-round-1-client-*.safetensors")))
    assert len(dumps) == SITES, dumps
    f = int(relay_log(SITES + 1).split("frac_bits=")[1].split()[0])
    kept = {k: flat(read_safetensors(job.kept_update(k, 1))[0]) for k in range(1, SITES + 1)}
    best = (0, 0)
    for path in dumps:
        words, meta = read_u32(open(path, "rb").read())
        n_k = int(meta["num_samples"])
        for k in range(1, SITES + 1):
            plain_q = [(round(f32(kept[k][i] - g[i]) * 2.0 ** f) * n_k) & 0xffffffff
                       for i in range(len(words))]
            same_q = sum(1 for a, b in zip(words, plain_q) if a == b)
            same_f = sum(1 for a, b in zip(words, struct_f32(kept[k])) if a == b)
            best = max(best, (same_q, same_f))
    print(f"       the relays' dumps of their {len(dumps)} sites' masked updates: at most "
          f"{best[0]} of {len(words)} words equal a site's quantized delta, {best[1]} its "
          f"float bits (f = {f})")
    assert best[0] <= 3 and best[1] <= 3, best


def struct_f32(values):
    import array
    import struct
    return array.array("I", struct.pack(f"<{len(values)}f", *values))


def test_site_killed_after_sharing_keys():
    """4 sites under relay A (site 4 killed after sharing its keys), 2 under B."""
    fresh_store("drop.db", 2, rounds=1)
    job.cfg.update(round_timeout_s=10)
    job.write_coordinator_config()
    allow([SITES + 1, SITES + 2])
    t0 = time.time()
    job.start_coordinator()
    ports = [free_port(), free_port()]
    for k in (SITES + 1, SITES + 2):
        log = os.path.join(job.dir, f"relay-{k}.log")
        if os.path.exists(log):
            os.rename(log, log + ".tree")
    relays = [start_relay(SITES + 1, ports[0], 4), start_relay(SITES + 2, ports[1], 2)]
    victim = 4
    sites = {k: start_site(k, ports[0] if k <= 4 else ports[1],
                           {"FEDC_TEST_SECAGG_STALL_S": "120"} if k == victim else None)
             for k in range(1, SITES + 1)}
    vlog = os.path.join(job.dir, f"client-{victim}.log")
    job.wait_for(lambda: os.path.exists(vlog) and "test hook: stalling" in open(vlog).read(), 60,
                 "the victim to share its keys")
    sites[victim].send_signal(signal.SIGKILL)
    sites[victim].wait()
    cps = finish_run([p for k, p in sites.items() if k != victim], rounds=1)
    secs = time.time() - t0
    for p in relays:
        p.wait(timeout=20)
    log = relay_log(SITES + 1)
    assert "survivors=3 dropped=1" in log, log[-3000:]
    f = int(log.split("frac_bits=")[1].split()[0])
    g = flat(read_safetensors(cps[0][0])[0])
    model = flat(read_safetensors(cps[1][0])[0])
    survivors = [k for k in range(1, SITES + 1) if k != victim]
    n = 300  # the harness's default size per site
    kept = {k: flat(read_safetensors(job.kept_update(k, 1))[0]) for k in survivors}
    bound = 2.0 ** -(f + 1)
    worst = 0.0
    for i in range(len(model)):
        want = sum(n * kept[k][i] for k in survivors) / (n * len(survivors))
        err = abs(model[i] - want)
        worst = max(worst, err)
        assert err <= bound + 2e-7 * max(1.0, abs(want)), (i, model[i], want, err, bound)
    assert len(g) == len(model)
    print(f"       site {victim} killed after sharing keys with relay A: round 1 committed in "
          f"{secs:.1f} s; max error {worst:.2e} against the 5 survivors' plain average "
          f"(bound 2^-{f + 1} = {bound:.2e})")


def test_relay_killed_mid_secure_round():
    """Relay A killed (SIGKILL) in round 1 after it shared its keys with the root, started
    again: to the root it is a party that dropped; with 2 parties the root abandons the round and opens it
    again, and every committed model is still the flat secure run's."""
    fresh_store("kill.db", 2)
    job.cfg.update(round_timeout_s=10)
    job.write_coordinator_config()
    allow([SITES + 1, SITES + 2])
    for k in (SITES + 1, SITES + 2):
        log = os.path.join(job.dir, f"relay-{k}.log")
        if os.path.exists(log):
            os.rename(log, log + f".{time.time():.0f}")
    clog = os.path.join(job.dir, "coordinator.log")
    if os.path.exists(clog):
        os.rename(clog, clog + f".{time.time():.0f}")
    t0 = time.time()
    job.start_coordinator()
    ports = [free_port(), free_port()]
    relays = [start_relay(SITES + 1, ports[0], 3), start_relay(SITES + 2, ports[1], 3)]
    # site 1 stalls 3 s after sharing its keys with relay A: A has advertised and shared
    # with the root by then, and is killed while it waits for its sites' masked updates
    sites = [start_site(k, ports[(k - 1) // 3], {"FEDC_TEST_SECAGG_STALL_S": "3"} if k == 1
                        else None) for k in range(1, SITES + 1)]
    job.wait_for(lambda: 'round=1 msg="relay: secure phase closed" phase=shares'
                 in relay_log(SITES + 1), 60, "relay A to close its shares phase in round 1")
    relays[0].kill()
    relays[0].wait()
    relays[0] = start_relay(SITES + 1, ports[0], 3)
    cps = finish_run(sites)
    secs = time.time() - t0
    for p in relays:
        p.wait(timeout=20)
    tree = {r: tensors(blob) for r, (blob, _sha) in cps.items()}
    for r in sorted(flat_models):
        assert tree[r] == flat_models[r], f"round {r}: after the kill the model differs from flat"
    with open(clog) as f:
        abandoned = f.read().count("secure aggregation failed; abandoning the round")
    assert abandoned >= 1, "the root did not abandon the round the relay dropped out of"
    print(f"       relay A killed in round 1: {abandoned} secure round(s) abandoned at the root, "
          f"{ROUNDS} rounds committed byte-identical to flat in {secs:.1f} s")


def test_nested_secure_relays_refused():
    """A relay whose parent is a relay of a secure job refuses the job, naming why."""
    fresh_store("nested.db", 2)
    allow([SITES + 1])
    job.start_coordinator()
    ports = [free_port(), free_port()]
    for k in (SITES + 1, SITES + 2):
        log = os.path.join(job.dir, f"relay-{k}.log")
        if os.path.exists(log):
            os.rename(log, log + f".{time.time():.0f}")
    a = start_relay(SITES + 1, ports[0], 3)
    b = start_relay(SITES + 2, ports[1], 3, parent=ports[0])
    rc = b.wait(timeout=30)
    log = relay_log(SITES + 2)
    assert rc != 0 and "nested relays under secure aggregation are not supported" in log, (rc, log)
    a.send_signal(signal.SIGTERM)
    a.wait(timeout=20)
    job.coordinator.send_signal(signal.SIGTERM)
    job.coordinator.wait(timeout=20)


def test_relay_refusals():
    ini = os.path.join(job.dir, "relay-refuse.ini")
    with open(ini, "w") as f:
        f.write(f"""[server]
listen = 127.0.0.1:{free_port()}
[tls]
ca = {job.pki('ca.pem')}
cert = {job.pki('server.pem')}
key = {job.pki('server.key')}
[relay]
parent = https://127.0.0.1:{job.port}
cert = {job.pki('client-7.pem')}
key = {job.pki('client-7.key')}
""")
    r = subprocess.run([os.path.join(BIN, "fedc-coordinator"), "--config", ini, "--set",
                        "privacy.noise_multiplier=1", "relay"], capture_output=True, text=True)
    assert r.returncode == 2 and "noise_multiplier" in r.stderr, (r.returncode, r.stderr)


try:
    for t in (test_flat_secure_run, test_tree_secure_is_bit_identical,
              test_site_killed_after_sharing_keys, test_relay_killed_mid_secure_round,
              test_nested_secure_relays_refused, test_relay_refusals):
        suite.run(t)
finally:
    job.close(keep=suite.failed > 0 or bool(os.environ.get("KEEP")))
suite.finish()
