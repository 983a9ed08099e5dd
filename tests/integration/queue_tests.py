"""queue_tests.py - the job queue and site services on loopback.

One coordinator daemon ([server] queue = true) and three site services
(fedc-client --serve), started once and never restarted: a softmax job and
an MLP job of 20 rounds (which names a data set the sites hold under another name)
submitted one after the other are served by every site; the coordinator is
killed with SIGKILL in the middle of the second job and restarted, and the
job resumes with its committed rounds intact; a third job, submitted over
the admin endpoint, breaks site 3's policy (max_epochs): site 3 declines it,
the reason reaches the operator (`jobs`, the admin endpoint, /v1/status),
and the job runs with the other two. The admin endpoint refuses a
certificate that is not in [server] admins.
"""
import json
import os
import signal
import sqlite3
import ssl
import http.client
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

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


class Queue:
    def __init__(self):
        self.job = harness.Job("queue", 4)  # client-4 is the admin
        j = self.job
        self.admin_port = harness.free_port()
        self.ini = os.path.join(j.dir, "server.ini")
        with open(self.ini, "w") as f:
            f.write(f"""[server]
listen = 127.0.0.1:{j.port}
status_listen = 127.0.0.1:{j.status_port}
poll_s = 2
over_select = 1.0
idle_timeout_s = 10
queue = true
admin_listen = 127.0.0.1:{self.admin_port}
admins = {j.fingerprint(4)}
[tls]
ca = {j.pki('ca.pem')}
cert = {j.pki('server.pem')}
key = {j.pki('server.key')}
[store]
path = {j.store}
""")
        self.daemon = None

    def cmd(self, *args):
        return subprocess.run([os.path.join(harness.BIN, "fedc-coordinator"), "--config", self.ini]
                              + list(args), capture_output=True, text=True)

    def start_daemon(self):
        log = open(os.path.join(self.job.dir, "coordinator.log"), "ab")
        p = subprocess.Popen([os.path.join(harness.BIN, "fedc-coordinator"), "--config", self.ini],
                             stdout=log, stderr=log)
        self.job.procs.append(p)
        self.daemon = p
        return p

    def start_site(self, k, policy=""):
        j = self.job
        path = j.client_ini(k, keep=False)
        d = os.path.join(j.dir, "data", f"client-{k}")
        with open(path) as f:
            text = f.read()
        text = text.replace("[data]\n", f"[data]\nsets = alt:{d}/train-images.idx:{d}/train-labels.idx\n")
        text = text.replace("[client]\n", "[client]\nserve = true\n") + policy
        with open(path, "w") as f:
            f.write(text)
        log = open(os.path.join(j.dir, f"client-{k}.log"), "ab")
        p = subprocess.Popen([os.path.join(harness.BIN, "fedc-client"), "--config", path],
                             stdout=log, stderr=log)
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
        j = self.job
        ctx = ssl.create_default_context(cafile=j.pki("ca.pem"))
        ctx.load_cert_chain(j.pki(cert + ".pem"), j.pki(cert + ".key"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.admin_port, context=ctx, timeout=10)
        conn.request(method, path, body=body)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data


def test_queue_and_site_services():
    q = Queue()
    j = q.job
    try:
        for k in (1, 2, 3):
            r = q.cmd("allow", j.pki(f"client-{k}.pem"), "--name", f"site-{k}")
            assert r.returncode == 0, r.stderr
        daemon = q.start_daemon()
        sites = [q.start_site(1), q.start_site(2), q.start_site(3, "[policy]\nmax_epochs = 2\n")]

        # job 1: softmax, every site
        r = q.cmd("submit", q.write_job("softmax"), "--name", "softmax")
        assert r.returncode == 0 and "submitted job 1" in r.stdout, r.stdout + r.stderr
        j.wait_for(lambda: q.state(1) == "finished", 60, "job 1 to finish")
        assert sorted(q.rounds(1)) == [1, 2, 3], q.rounds(1)
        fps = {j.fingerprint(k) for k in (1, 2, 3)}
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

        # job 3 over the admin endpoint: 3 epochs break site 3's policy
        status, body = q.admin("POST", "/v1/admin/jobs?name=epochs3",
                               open(q.write_job("epochs3", epochs=3, cpr=2, rounds=2, seed=9)).read())
        assert status == 200 and json.loads(body)["id"] == 3, (status, body)
        status, body = q.admin("GET", "/v1/admin/jobs", cert="client-1")
        assert status == 403, "a site certificate must not pass the admin endpoint"
        j.wait_for(lambda: "declined by site-3" in q.jobs(), 60, "site 3 to decline job 3")
        seen = j.wait_for(lambda: j.status(), 10, "job 3's status")
        j.wait_for(lambda: q.state(3) == "finished", 60, "job 3 to finish")
        out = q.jobs()
        assert "max_epochs = 2" in out, out
        status, body = q.admin("GET", "/v1/admin/jobs")
        j3 = [x for x in json.loads(body)["jobs"] if x["id"] == 3][0]
        assert j3["declined"] and "max_epochs" in j3["declined"][0]["reason"], j3
        assert q.senders(3) == {j.fingerprint(1), j.fingerprint(2)}, "job 3 ran without site 3"
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
        status, body = q.admin("GET", "/v1/admin/jobs/1/model/2")
        assert status == 200 and body[:8], status
        assert all(p.poll() is None for p in sites), "a site service exited"

        # job 4 does not fit the sites' data (100 inputs): every site
        # declines it instead of being selected for rounds it cannot train
        job4 = q.write_job("unfit", seed=10).replace(".ini", "")
        with open(job4 + ".ini") as f:
            text = f.read().replace("inputs = 784", "inputs = 100")
        with open(job4 + ".ini", "w") as f:
            f.write(text)
        assert q.cmd("submit", job4 + ".ini").returncode == 0
        j.wait_for(lambda: q.jobs().count("declined by site-") >= 4, 60, "every site to decline job 4")
        assert q.cmd("cancel", "4").returncode == 0
        j.wait_for(lambda: q.state(4) == "cancelled", 10, "job 4 cancelled")
        assert not q.rounds(4), "no round of job 4 ran"
        assert all(p.poll() is None for p in sites), "a site service exited"
    except Exception:
        j.close(keep=True)
        raise
    j.close()


def test_cancel():
    """A queued job cancelled never starts; a running one (no sites: it
    waits for clients) stops within a tick, and the next job starts on the
    same port; a bad job file is refused at submit, naming the key."""
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
        for name in ("b", "c"):
            assert q.cmd("submit", q.write_job(name)).returncode == 0
        q.job.wait_for(lambda: q.state(2) == "running", 10, "job 2 to start")
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
