"""provision_tests.py - provisioning without moving keys, certificate
expiry, allow/revoke on the running daemon, and the audit trail, with the
real binaries on loopback (docs/operations.md).

  provision_job_audit   pki init (then again: the server certificate
                        renewed by the same CA); enroll at 3 sites, each in its own
                        folder; only the requests travel; pki sign makes
                        startup kits; a job runs over mutual TLS with the
                        kits' site.ini; no private key is ever found outside
                        the folder of the party that made it; expiry in
                        `clients` and /metrics, the 30-day warning;
                        `audit` passes and recomputes every round from the
                        kept updates, and fails naming the round after one
                        byte of a checkpoint, of an audit record or of a
                        round's row is changed
  revoke_running        allow takes effect on the running daemon; revoke
                        closes the client's open connections and the client
                        stops (exit 3)
"""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Job, Suite  # noqa: E402

COORD = os.path.join(BIN, "fedc-coordinator")
CLIENT = os.path.join(BIN, "fedc-client")


def run(args, cwd=None, ok=True):
    r = subprocess.run(args, capture_output=True, text=True, cwd=cwd)
    if ok:
        assert r.returncode == 0, f"{args}: exit {r.returncode}: {r.stderr}{r.stdout}"
    return r


def private_key_files(root, skip):
    """Every file under root holding a PEM private key (skip: folders left out)."""
    found = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if os.path.join(d, x) not in skip]
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                if b"PRIVATE KEY-----" in fh.read():
                    found.append(p)
    return sorted(found)


def key_body(path):
    with open(path) as f:
        return "".join(l.strip() for l in f if not l.startswith("-----"))


def all_files(root, skip):
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if os.path.join(d, x) not in skip]
        for f in files:
            yield os.path.join(d, f)


def copy_store(src, dst):
    """A consistent copy of a store (sqlite's backup API; WAL included)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def audit(store, *extra):
    return run([COORD, "audit", "--store", store] + list(extra), ok=False)


def provision_job_audit():
    job = Job("prov", 3, rounds=3)
    try:
        d = job.dir
        coord = os.path.join(d, "coordinator")
        sites = [os.path.join(d, f"site-{k}") for k in (1, 2, 3)]
        # the coordinator's operator: CA and server certificate for the names used
        run([COORD, "pki", "init", "--dir", coord, "--san", "DNS:localhost", "--san",
             "IP:127.0.0.1", "--url", f"https://127.0.0.1:{job.port}"])
        # renewing the server certificate: the CA in the folder is kept
        with open(os.path.join(coord, "ca.pem")) as f:
            ca_before = f.read()
        old = os.path.join(d, "old-server")
        os.makedirs(old)
        for f in ("server.pem", "server.key"):
            shutil.move(os.path.join(coord, f), old)
        r = run([COORD, "pki", "init", "--dir", coord, "--san", "DNS:localhost", "--san",
                 "IP:127.0.0.1", "--url", f"https://127.0.0.1:{job.port}"])
        assert "(kept)" in r.stdout, r.stdout
        with open(os.path.join(coord, "ca.pem")) as f:
            assert f.read() == ca_before, "pki init replaced the CA"
        shutil.rmtree(old)
        # each site: its key and request, in its own folder; only the CSR travels
        inbox = os.path.join(coord, "inbox")
        os.makedirs(inbox)
        for k, site in enumerate(sites, 1):
            run([CLIENT, "enroll", "--name", f"site-{k}", "--dir", site])
            shutil.copy(os.path.join(site, f"site-{k}.csr"), inbox)
        # enrolling twice must not replace a key
        r = run([CLIENT, "enroll", "--name", "site-1", "--dir", sites[0]], ok=False)
        assert r.returncode == 2 and "exists" in r.stderr, r.stderr
        # sign: certificate, kit, allowed in the job's store
        for k in (1, 2, 3):
            run([COORD, "pki", "sign", os.path.join(inbox, f"site-{k}.csr"), "--dir", coord,
                 "--store", job.store])
        # an admin, and a site whose certificate expires in 10 days (warned)
        admin = os.path.join(d, "admin")
        run([CLIENT, "enroll", "--name", "ops", "--dir", admin])
        shutil.copy(os.path.join(admin, "ops.csr"), inbox)
        run([COORD, "pki", "sign", os.path.join(inbox, "ops.csr"), "--dir", coord, "--store",
             job.store, "--admin"])
        short = os.path.join(d, "site-short")
        run([CLIENT, "enroll", "--name", "site-short", "--dir", short])
        shutil.copy(os.path.join(short, "site-short.csr"), inbox)
        run([COORD, "pki", "sign", os.path.join(inbox, "site-short.csr"), "--dir", coord,
             "--store", job.store, "--days", "10"])
        # a request whose signature does not verify is refused
        bad = os.path.join(inbox, "bad.csr")
        with open(os.path.join(inbox, "site-1.csr")) as f:
            lines = f.read().splitlines()
        mid = lines[3]
        lines[3] = mid[:10] + ("A" if mid[10] != "A" else "B") + mid[11:]
        with open(bad, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = run([COORD, "pki", "sign", bad, "--dir", coord, "--kit", os.path.join(d, "badkit")],
                ok=False)
        assert r.returncode != 0, "a tampered CSR was signed"
        # the kits travel back to the sites: public files only
        for k, site in enumerate(sites, 1):
            kit = os.path.join(coord, "kits", f"site-{k}")
            assert sorted(os.listdir(kit)) == sorted(["ca.pem", f"site-{k}.pem", "site.ini",
                                                      "url"]), os.listdir(kit)
            for f in os.listdir(kit):
                shutil.copy(os.path.join(kit, f), site)
            data = os.path.join(d, "data", f"client-{k}")
            with open(os.path.join(site, "site.ini"), "a") as f:
                f.write(f"format = idx\ntrain = {data}/train-images.idx\n"
                        f"train_labels = {data}/train-labels.idx\n")
        # the coordinator runs with the new PKI
        with open(job.coord_ini) as f:
            ini = f.read()
        ini = re.sub(r"\[tls\]\n(.*\n){3}", f"[tls]\nca = {coord}/ca.pem\ncert = {coord}/server.pem\n"
                     f"key = {coord}/server.key\n", ini)
        with open(job.coord_ini, "w") as f:
            f.write(ini)
        job.start_coordinator()
        procs = []
        for k, site in enumerate(sites, 1):
            log = open(os.path.join(d, f"site-{k}.log"), "ab")
            procs.append(subprocess.Popen(
                [CLIENT, "--config", "site.ini", "--set", "client.keep_updates=updates",
                 "--set", "client.give_up_s=60"], cwd=site, stdout=log, stderr=log))
            job.procs.append(procs[-1])
        for p in procs:
            assert p.wait(timeout=180) == 0, f"a site failed; logs in {d}"
        assert job.committed() == 3
        # expiry: the metrics, the list, the warning
        m = job.metrics()
        srv = re.search(r'fedc_cert_expiry_seconds\{role="server"\} (-?\d+)', m)
        assert srv and 820 * 86400 < int(srv.group(1)) <= 825 * 86400, m[-800:]
        clients = re.findall(r'fedc_cert_expiry_seconds\{role="client",[^}]*\} (-?\d+)', m)
        assert len(clients) == 5, clients
        assert min(int(x) for x in clients) < 10 * 86400 + 60
        lst = job.coordinator_cmd("clients").stdout
        assert lst.count("expires=") == 5 and "admin ops" in lst, lst
        assert re.search(r"SOON\s+site-short", lst), lst
        # each client gauge names the client that holds that certificate
        gauge = r'fedc_cert_expiry_seconds\{role="client",client="(\d+)",fingerprint="([0-9a-f]{64})"\}'
        rows = {(i, f) for i, st, f in re.findall(r"^\s*(\d+)\s+(\w+)\s+([0-9a-f]{64}) .*expires=",
                                                   lst, re.M) if st == "allowed"}
        assert set(re.findall(gauge, m)) == rows and len(rows) == 5, (re.findall(gauge, m), lst)
        # a revoked client's certificate leaves the gauges (the list refresh)
        gone_id, gone_fpr = sorted(rows)[0]
        r = job.coordinator_cmd("revoke", gone_fpr)
        assert r.returncode == 0, r.stderr
        left = job.wait_for(lambda: (lambda g: g if len(g) == 4 else None)(
            set(re.findall(gauge, job.metrics()))), 30, "the revoked client's gauge to go")
        assert left == rows - {(gone_id, gone_fpr)}, left
        with open(os.path.join(d, "coordinator.log")) as f:
            log = f.read()
        assert "expires soon" in log and "site-short" in log, "no 30-day warning logged"
        job.coordinator.kill()
        job.coordinator.wait()
        # no private key outside the folder of the party that made it
        skip = {os.path.join(d, "pki"), os.path.join(d, "data")}  # the harness's own PKI
        owners = {os.path.join(coord, "ca.key"), os.path.join(coord, "server.key"),
                  os.path.join(admin, "ops.key"), os.path.join(short, "site-short.key")}
        owners |= {os.path.join(s, f"site-{k}.key") for k, s in enumerate(sites, 1)}
        found = set(private_key_files(d, skip))
        assert found == owners, f"private keys found: {sorted(found)}, made: {sorted(owners)}"
        for p in owners:
            assert os.stat(p).st_mode & 0o777 == 0o600, f"{p} is not mode 0600"
            body = key_body(p)
            for f in all_files(d, skip):
                if f != p:
                    with open(f, "rb") as fh:
                        assert body.encode() not in fh.read(), f"{p}'s key is in {f}"
        # the audit trail: passes, recomputes every round from the kept updates
        r = audit(job.store)
        assert r.returncode == 0 and "3 committed rounds, 0 findings" in r.stdout, r.stdout + r.stderr
        ups = [os.path.join(s, "updates") for s in sites]
        r = audit(job.store, "--updates", *ups)
        assert r.returncode == 0 and "3 rounds recomputed exactly" in r.stdout, r.stdout + r.stderr
        # without one site's updates the rounds are listed as not recomputed
        r = audit(job.store, "--updates", *ups[:2])
        assert r.returncode == 0 and "0 rounds recomputed" in r.stdout, r.stdout
        # one byte of a checkpoint: names its round
        t1 = os.path.join(d, "tamper-ckpt.db")
        copy_store(job.store, t1)
        with sqlite3.connect(t1) as con:
            blob = bytearray(con.execute("SELECT model FROM checkpoints WHERE round = 2").fetchone()[0])
            blob[-5] ^= 0x01
            con.execute("UPDATE checkpoints SET model = ? WHERE round = 2", (bytes(blob),))
        r = audit(t1)
        assert r.returncode != 0 and "round 2: its checkpoint's bytes" in r.stdout, r.stdout
        assert "round 1:" not in r.stdout, r.stdout
        # one byte of an audit record: names its round
        t2 = os.path.join(d, "tamper-record.db")
        copy_store(job.store, t2)
        with sqlite3.connect(t2) as con:
            rec = con.execute("SELECT record FROM audit WHERE round = 2").fetchone()[0]
            i = rec.index('"samples":') + len('"samples":')
            rec = rec[:i] + ("9" if rec[i] != "9" else "8") + rec[i + 1:]
            con.execute("UPDATE audit SET record = ? WHERE round = 2", (rec,))
        r = audit(t2)
        assert r.returncode != 0 and "round 2: the audit record does not hash" in r.stdout, r.stdout
        # one byte of a round's row (its loss): names its round
        t3 = os.path.join(d, "tamper-row.db")
        copy_store(job.store, t3)
        with sqlite3.connect(t3) as con:
            con.execute("UPDATE rounds SET samples = samples + 1 WHERE round = 3")
        r = audit(t3)
        assert r.returncode != 0 and "round 3: the rounds table's row" in r.stdout, r.stdout
        # a checkpoint's bytes changed where the recomputation would see it too
        r = audit(t1, "--updates", *ups)
        assert r.returncode != 0 and "round 2:" in r.stdout, r.stdout
    finally:
        job.close()


def revoke_running():
    job = Job("revoke", 2, rounds=500, clients_per_round=1, min_clients=1, poll_s=1)
    try:
        job.start_coordinator()
        # allow on the running daemon: re-read within seconds
        r = job.coordinator_cmd("allow", job.pki("client-1.pem"), "--name", "site-1")
        assert r.returncode == 0, r.stderr
        job.wait_for(lambda: any(c["name"] == "site-1" for c in job.status()["clients"]), 15,
                     "the daemon to see the allowed client")
        p = job.start_client(1)
        job.wait_for(lambda: job.committed() >= 2, 60, "rounds with the allowed client")
        r = job.coordinator_cmd("revoke", job.pki("client-1.pem"))
        assert r.returncode == 0, r.stderr
        assert p.wait(timeout=30) == 3, "the revoked client did not stop with exit 3"
        with open(os.path.join(job.dir, "coordinator.log")) as f:
            log = f.read()
        assert re.search(r'revoked: closed its connections" connections=[1-9]', log), log[-2000:]
        st = job.status()
        assert [c["status"] for c in st["clients"] if c["name"] == "site-1"] == ["revoked"]
    finally:
        job.close()


if __name__ == "__main__":
    s = Suite("provision")
    for t in (provision_job_audit, revoke_running):
        s.run(t)
    s.finish()
