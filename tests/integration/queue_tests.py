"""queue_tests.py - the job queue and site services on loopback: the
acceptance test of issue 16 end to end (docs/operations.md's lifecycle).

  queue_and_site_services  provisioning as a consortium does it: pki init
        (CA and server certificate), 3 sites and an operator enroll (each
        key made in its own folder, only the requests travel), pki sign
        (certificates, startup kits, allowed in the daemon's store; the
        operator's with --admin). One coordinator daemon ([server] queue =
        true) and three site services (fedc-client --serve, each run from
        its kit's site.ini), started once and never restarted: a softmax job
        and an MLP job of 20 rounds (which names a data set the sites hold
        under another name) submitted one after the other are served by
        every site; the coordinator is killed with SIGKILL in the middle of
        the second job and restarted, and the job resumes with its committed
        rounds intact; a third job, submitted over the admin endpoint with
        the operator's certificate, breaks site 3's policy (max_epochs):
        site 3 declines it, the reason reaches the operator (`jobs`, the
        admin endpoint, /v1/status), and the job runs with the other two; a
        site's certificate gets 403 there; a fourth job that fits no site's
        data is declined by all and cancelled over the endpoint. Before the
        first job and after that cancel no job runs: the daemon's idle
        listener tells the sites (409 no_job), they wait on it, and a fifth
        job submitted then is served by all three. No private
        key is found outside the folder of the party that made it. `audit`
        passes on every job of the daemon's store and recomputes each round
        from the sites' kept updates; one byte changed in a stored
        checkpoint, an audit record or a round's row fails it, naming the
        round.
  cancel   queued and running jobs cancelled; a bad job file refused; the
        admin endpoint with a certificate in [server] admins.
"""
import json
import os
import re
import signal
import sqlite3
import ssl
import hashlib
import http.client
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from provision_tests import all_files, copy_store, key_body, private_key_files  # noqa: E402

COORD = os.path.join(harness.BIN, "fedc-coordinator")
CLIENT = os.path.join(harness.BIN, "fedc-client")

JOB_COMMON = """[job]
rounds = {rounds}
clients_per_round = {cpr}
min_clients = {cpr}
round_timeout_s = 30
seed = {seed}
[model]
type = {model}
hidden = {hidden}
inputs = 784
classes = 10
[train]
epochs = {epochs}
batch_size = 32
lr = 0.05
[data]
test =
set = {dataset}
"""


def run(args, cwd=None):
    r = subprocess.run(args, capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, f"{args}: exit {r.returncode}: {r.stderr}{r.stdout}"
    return r


def pem_fingerprint(path):
    """SHA-256 of a PEM certificate's DER, as the coordinator keys clients."""
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


class Queue:
    """A queue daemon's config. provision=False: the harness's development
    PKI, client-4 an admin by [server] admins. provision=True: the PKI made
    as docs/operations.md says (pki init, enroll, pki sign) in the folders
    coordinator/, site-K/ and operator/ of the job's directory."""

    def __init__(self, provision=False):
        self.job = harness.Job("queue", 3 if provision else 4)  # client-4 is the admin
        j = self.job
        self.admin_port = harness.free_port()
        self.ini = os.path.join(j.dir, "server.ini")
        self.daemon = None
        if provision:
            self.provision()
            tls = (self.coord + "/ca.pem", self.coord + "/server.pem", self.coord + "/server.key")
            admins = ""
        else:
            tls = (j.pki("ca.pem"), j.pki("server.pem"), j.pki("server.key"))
            admins = f"admins = {j.fingerprint(4)}\n"
            self.ids = {f"client-{k}": (j.pki(f"client-{k}.pem"), j.pki(f"client-{k}.key"))
                        for k in (1, 2, 3, 4)}
            self.ca = j.pki("ca.pem")
            self.fps = {k: j.fingerprint(k) for k in (1, 2, 3)}
        with open(self.ini, "w") as f:
            f.write(f"""[server]
listen = 127.0.0.1:{j.port}
status_listen = 127.0.0.1:{j.status_port}
poll_s = 2
over_select = 1.0
idle_timeout_s = 10
queue = true
admin_listen = 127.0.0.1:{self.admin_port}
{admins}[tls]
ca = {tls[0]}
cert = {tls[1]}
key = {tls[2]}
[store]
path = {j.store}
""")

    def provision(self):
        """pki init, then each party's key and request in its own folder;
        only the requests travel to the coordinator's inbox, only the kits
        (public files) travel back. Every certificate is allowed in the
        daemon's store by pki sign --store; the operator's is an admin's."""
        j = self.job
        d = j.dir
        self.coord = os.path.join(d, "coordinator")
        self.sites = {k: os.path.join(d, f"site-{k}") for k in (1, 2, 3)}
        self.operator = os.path.join(d, "operator")
        run([COORD, "pki", "init", "--dir", self.coord, "--san", "DNS:localhost", "--san",
             "IP:127.0.0.1", "--url", f"https://127.0.0.1:{j.port}"])
        inbox = os.path.join(self.coord, "inbox")
        os.makedirs(inbox)
        parties = [(f"site-{k}", self.sites[k], []) for k in (1, 2, 3)]
        parties.append(("ops", self.operator, ["--admin"]))
        for name, folder, extra in parties:
            run([CLIENT, "enroll", "--name", name, "--dir", folder])
            shutil.copy(os.path.join(folder, name + ".csr"), inbox)
            r = run([COORD, "pki", "sign", os.path.join(inbox, name + ".csr"), "--dir", self.coord,
                     "--store", j.store] + extra)
            assert ("(admin)" in r.stdout) == bool(extra), r.stdout
            kit = os.path.join(self.coord, "kits", name)
            assert sorted(os.listdir(kit)) == sorted(["ca.pem", name + ".pem", "site.ini", "url"])
            for f in os.listdir(kit):
                shutil.copy(os.path.join(kit, f), folder)
        self.ca = os.path.join(self.coord, "ca.pem")
        self.ids = {f"client-{k}": (os.path.join(s, f"site-{k}.pem"), os.path.join(s, f"site-{k}.key"))
                    for k, s in self.sites.items()}
        self.ids["ops"] = (os.path.join(self.operator, "ops.pem"), os.path.join(self.operator, "ops.key"))
        self.fps = {k: pem_fingerprint(self.ids[f"client-{k}"][0]) for k in (1, 2, 3)}
        self.owners = {os.path.join(self.coord, "ca.key"), os.path.join(self.coord, "server.key"),
                       os.path.join(self.operator, "ops.key")}
        self.owners |= {os.path.join(s, f"site-{k}.key") for k, s in self.sites.items()}

    def cmd(self, *args):
        return subprocess.run([COORD, "--config", self.ini] + list(args), capture_output=True,
                              text=True)

    def start_daemon(self):
        log = open(os.path.join(self.job.dir, "coordinator.log"), "ab")
        p = subprocess.Popen([COORD, "--config", self.ini], stdout=log, stderr=log)
        self.job.procs.append(p)
        self.daemon = p
        return p

    def start_site(self, k, policy=()):
        """Site k as a service, from its kit's site.ini in its own folder
        ([data] filled in as its IT department would; a second data set
        "alt"; kept updates in updates/), with policy's --set overrides."""
        j = self.job
        site = self.sites[k]
        d = os.path.join(j.dir, "data", f"client-{k}")
        with open(os.path.join(site, "site.ini"), "a") as f:
            f.write(f"format = idx\ntrain = {d}/train-images.idx\n"
                    f"train_labels = {d}/train-labels.idx\ntest =\n"
                    f"sets = alt:{d}/train-images.idx:{d}/train-labels.idx\n")
        sets = ["client.keep_updates=updates", "client.backoff_max_s=1"] + list(policy)
        args = [CLIENT, "--config", "site.ini", "--serve"]
        for kv in sets:
            args += ["--set", kv]
        log = open(os.path.join(j.dir, f"client-{k}.log"), "ab")
        p = subprocess.Popen(args, cwd=site, stdout=log, stderr=log)
        j.procs.append(p)
        return p

    def write_job(self, name, **kw):
        v = dict(rounds=3, cpr=3, seed=7, model="softmax", hidden="", epochs=1, dataset="")
        v.update(kw)
        path = os.path.join(self.job.dir, name + ".ini")
        with open(path, "w") as f:
            f.write(JOB_COMMON.format(**v))
        return path

    def jobs(self):
        r = self.cmd("jobs")
        assert r.returncode == 0, r.stderr
        return r.stdout

    def job_db(self, jid):
        return sqlite3.connect(f"file:{self.job.store}.jobs/job-{jid}.db?mode=ro", uri=True)

    def rounds(self, jid):
        try:
            with self.job_db(jid) as con:
                return {r: sha for r, sha in con.execute("SELECT round, sha256 FROM rounds")}
        except sqlite3.Error:
            return {}

    def senders(self, jid):
        with self.job_db(jid) as con:
            return {fp for (fp,) in con.execute(
                "SELECT DISTINCT c.fingerprint FROM updates u JOIN clients c ON c.id = u.client_id")}

    def state(self, jid):
        for line in self.jobs().splitlines():
            f = line.split()
            if f and f[0] == str(jid):
                return f[1]
        return None

    def admin(self, method, path, body=None, cert="client-4"):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.load_cert_chain(*self.ids[cert])
        conn = http.client.HTTPSConnection("127.0.0.1", self.admin_port, context=ctx, timeout=10)
        conn.request(method, path, body=body)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def log(self, name):
        with open(os.path.join(self.job.dir, name)) as f:
            return f.read()

    def audit(self, *args, store=None):
        return subprocess.run([COORD, "audit", "--store", store or self.job.store] + list(args),
                              capture_output=True, text=True)


def check_keys_stayed(q):
    """No private key outside the folder of the party that made it: every
    PEM private key under the test's directory (but the harness's own PKI
    and the data shards) is one of those made, mode 0600, and its body is in
    no other file (kits, logs, the stores)."""
    d = q.job.dir
    skip = {os.path.join(d, "pki"), os.path.join(d, "data")}
    found = set(private_key_files(d, skip))
    assert found == q.owners, f"private keys found: {sorted(found)}, made: {sorted(q.owners)}"
    for p in q.owners:
        assert os.stat(p).st_mode & 0o777 == 0o600, f"{p} is not mode 0600"
        body = key_body(p).encode()
        for f in all_files(d, skip):
            if f != p:
                with open(f, "rb") as fh:
                    assert body not in fh.read(), f"{p}'s key is in {f}"


def check_audit(q):
    """audit on the daemon's store: each job's own store, chain and
    checkpoints, every round recomputed from the sites' kept updates; then
    one byte of a checkpoint, of an audit record and of a round's row, each
    in a copy, fails it naming that round."""
    j = q.job
    ups = [os.path.join(s, "updates") for s in q.sites.values()]
    r = q.audit("--updates", *ups)
    out = r.stdout
    assert r.returncode == 0 and "audit: 5 jobs of the queue" in out, out + r.stderr
    for jid in (1, 2, 3, 4, 5):
        assert f"queued job {jid}, job " in out, out
    recomputed = re.findall(r"audit: (\d+) rounds recomputed exactly from the kept updates, (\d+) not",
                            out)
    assert recomputed == [("3", "0"), ("20", "0"), ("2", "0"), ("0", "0"), ("2", "0")], out
    r = q.audit("2")
    assert r.returncode == 0 and "queued job 2" in r.stdout and "20 committed rounds, 0 findings" \
        in r.stdout, r.stdout + r.stderr
    r = q.audit("9")
    assert r.returncode == 2 and "job 9" in r.stderr and "no store" in r.stderr, r.stderr
    # tampering, each in a copy of the daemon's store and job 2's store
    for what, rnd, change, expect in (
            ("ckpt", 7, "checkpoint", "its checkpoint's bytes"),
            ("record", 12, "record", "the audit record does not hash"),
            ("row", 15, "row", "the rounds table's row")):
        t = os.path.join(j.dir, f"tamper-{what}.db")
        os.makedirs(t + ".jobs")
        copy_store(j.store, t)
        copy_store(f"{j.store}.jobs/job-2.db", f"{t}.jobs/job-2.db")
        with sqlite3.connect(f"{t}.jobs/job-2.db") as con:
            if change == "checkpoint":
                blob = bytearray(con.execute("SELECT model FROM checkpoints WHERE round = ?",
                                             (rnd,)).fetchone()[0])
                blob[len(blob) // 2] ^= 0x01
                con.execute("UPDATE checkpoints SET model = ? WHERE round = ?", (bytes(blob), rnd))
            elif change == "record":
                rec = con.execute("SELECT record FROM audit WHERE round = ?", (rnd,)).fetchone()[0]
                i = rec.index('"samples":') + len('"samples":')
                rec = rec[:i] + ("9" if rec[i] != "9" else "8") + rec[i + 1:]
                con.execute("UPDATE audit SET record = ? WHERE round = ?", (rec, rnd))
            else:
                con.execute("UPDATE rounds SET samples = samples + 1 WHERE round = ?", (rnd,))
        r = q.audit("2", store=t)
        assert r.returncode == 1 and f"round {rnd}: {expect}" in r.stdout, (what, r.stdout)
        assert f"round {rnd - 1}:" not in r.stdout, (what, r.stdout)
        r = q.audit(store=t)  # the whole queue: job 2 is the one named
        assert r.returncode == 1 and f"round {rnd}: {expect}" in r.stdout, (what, r.stdout)


def test_queue_and_site_services():
    q = Queue(provision=True)
    j = q.job
    try:
        daemon = q.start_daemon()
        sites = [q.start_site(1), q.start_site(2), q.start_site(3, ["policy.max_epochs=2"])]
        # no job yet: the daemon's idle listener tells the sites, which wait
        # on it (a long-poll) instead of retrying their joins
        for k in (1, 2, 3):
            j.wait_for(lambda: "no job is running at the coordinator" in q.log(f"client-{k}.log"),
                       30, f"site {k} to hear that no job runs")

        # job 1: softmax, every site
        r = q.cmd("submit", q.write_job("softmax"), "--name", "softmax")
        assert r.returncode == 0 and "submitted job 1" in r.stdout, r.stdout + r.stderr
        j.wait_for(lambda: q.state(1) == "finished", 60, "job 1 to finish")
        assert sorted(q.rounds(1)) == [1, 2, 3], q.rounds(1)
        fps = set(q.fps.values())
        assert q.senders(1) == fps, "every site trained job 1"

        # job 2: an MLP on the data set "alt"; SIGKILL in its middle
        r = q.cmd("submit", q.write_job("mlp", model="mlp", hidden="16", rounds=20, seed=8,
                                         dataset="alt"), "--name", "mlp")
        assert r.returncode == 0, r.stderr
        j.wait_for(lambda: len(q.rounds(2)) >= 2, 60, "job 2's second round")
        before = q.rounds(2)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        assert q.state(2) == "running", q.jobs()
        q.start_daemon()
        j.wait_for(lambda: q.state(2) == "finished", 90, "job 2 to finish after the restart")
        after = q.rounds(2)
        assert sorted(after) == list(range(1, 21)), after
        for rnd, sha in before.items():
            assert after[rnd] == sha, f"round {rnd} changed across the restart"
        assert q.senders(2) == fps, "every site trained job 2"
        assert all(p.poll() is None for p in sites), "a site service exited"

        # job 3 over the admin endpoint with the operator's certificate
        # (pki sign --admin): 3 epochs break site 3's policy; a site's
        # certificate is refused there
        status, body = q.admin("POST", "/v1/admin/jobs?name=epochs3",
                               open(q.write_job("epochs3", epochs=3, cpr=2, rounds=2, seed=9)).read(),
                               cert="ops")
        assert status == 200 and json.loads(body)["id"] == 3, (status, body)
        for path, method in (("/v1/admin/jobs", "GET"), ("/v1/admin/jobs/3/cancel", "POST")):
            status, body = q.admin(method, path, cert="client-1")
            assert status == 403, f"a site certificate passed the admin endpoint: {path} {status}"
        j.wait_for(lambda: "declined by site-3" in q.jobs(), 60, "site 3 to decline job 3")
        seen = j.wait_for(lambda: j.status(), 10, "job 3's status")
        j.wait_for(lambda: q.state(3) == "finished", 60, "job 3 to finish")
        out = q.jobs()
        assert "max_epochs = 2" in out, out
        status, body = q.admin("GET", "/v1/admin/jobs", cert="ops")
        assert status == 200, (status, body)
        j3 = [x for x in json.loads(body)["jobs"] if x["id"] == 3][0]
        assert j3["declined"] and "max_epochs" in j3["declined"][0]["reason"], j3
        assert q.senders(3) == {q.fps[1], q.fps[2]}, "job 3 ran without site 3"
        st = j.status()
        assert st and any("max_epochs" in d["reason"] for d in st.get("declined", [])), st or seen
        with open(os.path.join(j.dir, "client-3.log")) as f:
            n = f.read().count("declined the job by this site's policy")
        assert 1 <= n <= 3, f"site 3 logs its reason once, not in a loop ({n} times)"
        with open(os.path.join(j.dir, "coordinator.log")) as f:
            assert "abandoned" not in f.read(), "a round waited for the site that declined"

        # export: a round, latest, best (no test set: latest, with a note)
        out_path = os.path.join(j.dir, "m.safetensors")
        r = q.cmd("export", "2", "latest", out_path)
        assert r.returncode == 0 and "after round 20" in r.stdout, r.stdout + r.stderr
        with q.job_db(2) as con:
            blob = con.execute("SELECT model FROM checkpoints WHERE round = 20").fetchone()[0]
        assert open(out_path, "rb").read() == blob
        r = q.cmd("export", "1", "best", out_path)
        assert r.returncode == 0 and "latest round" in r.stderr, r.stdout + r.stderr
        status, body = q.admin("GET", "/v1/admin/jobs/1/model/2", cert="ops")
        assert status == 200 and body[:8], status
        assert all(p.poll() is None for p in sites), "a site service exited"

        # job 4 does not fit the sites' data (100 inputs): every site
        # declines it instead of being selected for rounds it cannot train;
        # the operator cancels it over the endpoint
        job4 = q.write_job("unfit", seed=10).replace(".ini", "")
        with open(job4 + ".ini") as f:
            text = f.read().replace("inputs = 784", "inputs = 100")
        with open(job4 + ".ini", "w") as f:
            f.write(text)
        assert q.cmd("submit", job4 + ".ini").returncode == 0
        j.wait_for(lambda: q.jobs().count("declined by site-") >= 4, 60, "every site to decline job 4")
        status, body = q.admin("POST", "/v1/admin/jobs/4/cancel", cert="ops")
        assert status == 200, (status, body)
        j.wait_for(lambda: q.state(4) == "cancelled", 10, "job 4 cancelled")
        assert not q.rounds(4), "no round of job 4 ran"
        assert all(p.poll() is None for p in sites), "a site service exited"

        # the queue is empty again: the idle listener holds the address;
        # a job submitted then is served by every site
        idle = "no job running: sites wait on the listener"
        j.wait_for(lambda: q.log("coordinator.log").count(idle) >= 2, 20, "the idle listener")
        assert q.cmd("submit", q.write_job("again", rounds=2, seed=11)).returncode == 0
        j.wait_for(lambda: q.state(5) == "finished", 60, "job 5 to finish after an idle queue")
        assert q.senders(5) == fps, "every site trained job 5"
        assert all(p.poll() is None for p in sites), "a site service exited"

        check_keys_stayed(q)
        check_audit(q)
    except Exception:
        j.close(keep=True)
        raise
    j.close()


def test_cancel():
    """A queued job cancelled never starts; with nothing to run the idle
    listener answers the sites (403 to a certificate not allowed, 409
    no_job to a join, a held wait to a poll, 503 to the rest); a running
    job (no sites: it waits for clients) stops within a tick, and the next
    job starts on the same port; a bad job file is refused at submit,
    naming the key."""
    q = Queue()
    try:
        r = q.cmd("submit", q.write_job("a"))
        assert r.returncode == 0, r.stderr
        r = q.cmd("cancel", "1")
        assert r.returncode == 0, r.stderr
        assert q.state(1) == "cancelled", q.jobs()
        r = q.cmd("cancel", "1")
        assert r.returncode != 0 and "already ended" in r.stderr, r.stderr
        q.start_daemon()
        # nothing to run: the idle listener on the sites' address
        j = q.job
        j.wait_for(lambda: "no job running" in q.log("coordinator.log"), 10, "the idle listener")
        status, body = j.request("POST", "/v1/join", b"{}", cert="client-1")
        assert status == 403, (status, body)  # not allowed: refused as a job would
        assert q.cmd("allow", j.pki("client-1.pem")).returncode == 0
        status, body = j.request("POST", "/v1/join", b"{}", cert="client-1")
        assert status == 409 and json.loads(body)["error"] == "no_job", (status, body)
        t0 = time.time()
        status, body = j.request("GET", "/v1/task?wait=1&next=1", cert="client-1")
        assert status == 200 and json.loads(body)["action"] == "wait", (status, body)
        assert time.time() - t0 >= 0.9, "the poll was not held"
        status, body = j.request("POST", "/v1/update", b"x" * 100, cert="client-1")
        assert status == 503 and b"no_job" in body, (status, body)
        for name in ("b", "c"):
            assert q.cmd("submit", q.write_job(name)).returncode == 0
        q.job.wait_for(lambda: q.state(2) == "running", 10, "job 2 to start")
        # the admin endpoint: a certificate in [server] admins passes, a site's does not
        status, body = q.admin("GET", "/v1/admin/jobs", cert="client-4")
        assert status == 200 and len(json.loads(body)["jobs"]) == 3, (status, body)
        status, body = q.admin("GET", "/v1/admin/jobs", cert="client-1")
        assert status == 403, "a site certificate must not pass the admin endpoint"
        q.job.wait_for(lambda: q.job.status(), 10, "job 2's status page")
        assert q.cmd("cancel", "2").returncode == 0
        q.job.wait_for(lambda: q.state(3) == "running", 10, "job 3 to start after the cancel")
        assert q.state(2) == "cancelled", q.jobs()
        q.job.wait_for(lambda: q.job.status(), 10, "job 3 listening on the same port")
        assert q.state(1) == "cancelled", "a cancelled queued job never starts"
        bad = os.path.join(q.job.dir, "bad.ini")
        with open(bad, "w") as f:
            f.write("[model]\ntype = mlp\n")
        r = q.cmd("submit", bad)
        assert r.returncode != 0 and "hidden" in r.stderr, r.stderr
        with open(bad, "w") as f:
            f.write("[job]\nrounds = 2\n[store]\npath = /tmp/elsewhere.db\n")
        r = q.cmd("submit", bad)
        assert r.returncode != 0 and "[store] path is the queue daemon's" in r.stderr, r.stderr
    finally:
        q.job.close()


if __name__ == "__main__":
    s = harness.Suite("queue_tests")
    s.run(test_cancel)
    s.run(test_queue_and_site_services)
    s.finish()
