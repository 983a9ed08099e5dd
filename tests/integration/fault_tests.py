#!/usr/bin/env python3
"""fault_tests.py - fault injection into a running fedc-coordinator, with
real clients on loopback (docs/hardening.md).

One small job (softmax, 2 clients, 2 rounds) is run again and again on a
fresh store, each time with one failure injected while the daemon serves it:

- allocation failures: FEDC_FAIL_ALLOC_AFTER=N makes the Nth fedc
  allocation after the daemon starts listening fail (",sticky": that one
  and every later one);
- store failures: FEDC_FAIL_STORE_AFTER=N makes the Nth write, sync or
  truncate of the store's files fail with an I/O error, or with disk full
  (",full,sticky": the disk stays full);
- a real full disk (a small tmpfs filled up under the running daemon) and a
  real read-only file system (the tmpfs remounted read-only), when the
  test runs as root; said skipped otherwise.

For every injected failure the daemon must either answer the failing
request with a clean error and keep going, or (a failure inside a commit)
exit with code 4; a sticky failure may leave it unable to go on, and then
SIGTERM must stop it cleanly. Afterwards: PRAGMA integrity_check is ok,
every committed round's checkpoint matches its stored sha256 and the
model of a run without faults tensor for tensor, no checkpoint changed
across a restart, a restarted daemon finishes the job, both clients exit
0, and every daemon exit reports no live fedc allocation (and, in a
sanitizer build, no sanitizer report and no leak: LeakSanitizer would turn
the exit code into 23).

    fault_tests.py            a handful of each kind (make test)
    fault_tests.py --long     every N the clean run reaches (make test-long)
"""
import errno
import hashlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Job, read_safetensors  # noqa: E402

ROUNDS = 2
FINISH_S = 30.0  # a job hit by a transient failure must finish within this
STALL_S = 2.5    # a sticky failure gets this long before it is stopped
REPORT = re.compile(r'msg="test hook report" allocs=(\d+) store_ops=(\d+) '
                    r'store_failures=(\d+) live_blocks=(-?\d+)')
SANITIZER = re.compile(r"Sanitizer|runtime error:")


def tensors(blob):
    t, _ = read_safetensors(blob)
    return {name: (shape, arr.tobytes()) for name, (shape, arr) in t.items()}


class Faults:
    def __init__(self):
        self.job = Job("faults", 2, rounds=ROUNDS, round_timeout_s=20, poll_s=1)
        self.case_no = 0
        self.tally = {"runs": 0, "fired": 0, "kept going": 0, "exit 4": 0,
                      "stopped": 0, "restarts": 0, "leaks": 0, "corrupt": 0}
        self.ref = None
        stats, _ = self.case("clean run", {}, sticky=False)
        self.allocs, self.store_ops = stats["allocs"], stats["store_ops"]

    # ---- processes ------------------------------------------------------------
    def start(self, env, log_path):
        """The daemon with env added; waits until it listens (or exits)."""
        log = open(log_path, "ab")
        p = subprocess.Popen([os.path.join(BIN, "fedc-coordinator"), "--config",
                              self.job.coord_ini], stdout=log, stderr=log,
                             env=dict(os.environ, **env))
        log.close()
        self.job.procs.append(p)
        end = time.time() + 15
        while time.time() < end and p.poll() is None:
            with open(log_path, "rb") as f:
                if b'msg="listening"' in f.read():
                    return p
            time.sleep(0.01)
        raise AssertionError(f"the coordinator did not listen (exit {p.poll()}): "
                             f"{self.tail(log_path)}")

    @staticmethod
    def tail(path, n=1200):
        """The end of a log, or the start of the sanitizer report in it."""
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
        m = SANITIZER.search(text)
        if m:
            start = text.rfind("\n", 0, max(0, m.start() - 300)) + 1
            return text[start:start + 2500]
        return text[-n:]

    def stop(self, p, label):
        """SIGTERM; the exit code."""
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{label}: the coordinator ignored SIGTERM") from None

    def check_log(self, log_path, label, hooked):
        """No sanitizer report; with hooks, nothing of fedc's left allocated."""
        with open(log_path, "rb") as f:
            text = f.read().decode(errors="replace")
        if SANITIZER.search(text):
            self.tally["leaks"] += "Leak" in text
            raise AssertionError(f"{label}: sanitizer report: {self.tail(log_path)}")
        if not hooked:
            return None
        m = REPORT.findall(text)
        assert m, f"{label}: no test hook report: {self.tail(log_path)}"
        allocs, ops, fails, live = (int(x) for x in m[-1])
        if live != 0:
            self.tally["leaks"] += 1
            raise AssertionError(f"{label}: {live} fedc blocks still allocated at exit")
        return {"allocs": allocs, "store_ops": ops, "store_failures": fails}

    # ---- the store ------------------------------------------------------------
    def check_store(self, path, label, uri_extra=""):
        """Integrity, rounds 1..k in order, every checkpoint against its
        sha256 and (once known) the clean run's tensors: {round: sha}."""
        con = sqlite3.connect(f"file:{path}?mode=ro{uri_extra}", uri=True)
        try:
            ok = con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            ok = ok and con.execute("PRAGMA foreign_key_check").fetchall() == []
            if not ok:
                self.tally["corrupt"] += 1
                raise AssertionError(f"{label}: the store fails its integrity check")
            rounds = {r: sha for r, sha in con.execute("SELECT round, sha256 FROM rounds")}
            ckpts = {r: (blob, sha) for r, blob, sha in
                     con.execute("SELECT round, model, sha256 FROM checkpoints")}
        finally:
            con.close()
        assert sorted(rounds) == list(range(1, len(rounds) + 1)), (label, sorted(rounds))
        assert sorted(ckpts) == list(range(0, len(rounds) + 1)), (label, sorted(ckpts))
        for r, (blob, sha) in ckpts.items():
            if hashlib.sha256(blob).hexdigest() != sha or (r and rounds[r] != sha):
                self.tally["corrupt"] += 1
                raise AssertionError(f"{label}: checkpoint {r} does not match its sha256")
            if self.ref is not None and tensors(blob) != self.ref[r]:
                self.tally["corrupt"] += 1
                raise AssertionError(f"{label}: checkpoint {r} differs from the run without faults")
        return {r: sha for r, (_, sha) in ckpts.items()}, ckpts

    def fresh_store(self, path=None):
        self.case_no += 1
        job = self.job
        job.store = path or os.path.join(job.dir, f"case-{self.case_no}.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(job.store + suffix):
                os.remove(job.store + suffix)
        job.write_coordinator_config()
        job.allow_all()
        return os.path.join(job.dir, f"case-{self.case_no}.log")

    def drop_store(self):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.job.store + suffix):
                os.remove(self.job.store + suffix)

    # ---- one run with one injected failure -------------------------------------
    def case(self, label, env, sticky, store_path=None, during=None, fix=None, vfs=True):
        """Run the job with env's hooks. during(): once the daemon listens,
        before the clients start; fix(): before a restart (what an operator
        does about the failure). Returns (the hooked daemon's report, how
        it went: "kept going", "exit 4" or "stopped"). vfs=False keeps
        sqlite's own VFS (for the real file-system failures)."""
        job = self.job
        log = self.fresh_store(store_path)
        hooks = dict(env)
        hooks.setdefault("FEDC_FAIL_ALLOC_AFTER", "0")  # count, for the leak report
        if vfs:
            hooks.setdefault("FEDC_FAIL_STORE_AFTER", "0")
        p = self.start(hooks, log)
        procs = [p]
        try:
            return self.run_case(label, sticky, log, p, procs, during, fix, store_path)
        finally:
            for q in procs:  # whatever a failed check left running
                if q.poll() is None:
                    q.kill()
                    q.wait()

    def run_case(self, label, sticky, log, p, procs, during, fix, store_path):
        job = self.job
        if during:
            during()
        clients = [job.start_client(k, keep=False) for k in (1, 2)]
        procs += clients
        self.tally["runs"] += 1
        outcome, first_report, snapshot = "kept going", None, {}
        deadline = time.time() + (STALL_S if sticky else FINISH_S)
        restarts = 0
        while any(c.poll() is None for c in clients):
            rc = p.poll()
            stalled = rc is None and time.time() > deadline
            if rc is None and not stalled:
                time.sleep(0.02)
                continue
            if stalled:
                assert sticky, f"{label}: the job stalled after a transient failure: {self.tail(log)}"
                rc = self.stop(p, label)
                assert rc in (0, 4), f"{label}: exit {rc} after SIGTERM: {self.tail(log)}"
                outcome = "stopped" if outcome == "kept going" else outcome
            else:
                assert rc == 4, f"{label}: the coordinator exited {rc}: {self.tail(log)}"
                outcome = "exit 4"
            report = self.check_log(log, label, hooked=True)
            first_report = first_report or report
            shas, _ = self.check_store(job.store, label)
            for r, sha in snapshot.items():
                assert shas.get(r) == sha, f"{label}: checkpoint {r} changed across a restart"
            snapshot = shas
            restarts += 1
            assert restarts <= 3, f"{label}: restarted {restarts} times"
            if fix:
                fix()
            # start again without the failure (still counting, for the report)
            os.rename(log, log + f".{restarts}")
            p = self.start({"FEDC_FAIL_ALLOC_AFTER": "0"}, log)
            procs.append(p)
            sticky = False  # nothing is injected now: the job must finish
            deadline = time.time() + FINISH_S
        for k, c in enumerate(clients, 1):
            assert c.wait() == 0, f"{label}: client {k} exited {c.returncode}"
        rc = self.stop(p, label)
        assert rc == 0, f"{label}: exit {rc} after SIGTERM: {self.tail(log)}"
        report = self.check_log(log, label, hooked=True)
        first_report = first_report or report
        shas, ckpts = self.check_store(job.store, label)
        assert len(shas) == ROUNDS + 1, f"{label}: {len(shas) - 1} rounds committed"
        for r, sha in snapshot.items():
            assert shas.get(r) == sha, f"{label}: checkpoint {r} changed across a restart"
        if self.ref is None:
            self.ref = {r: tensors(blob) for r, (blob, _) in ckpts.items()}
        self.tally[outcome] += 1
        self.tally["restarts"] += restarts
        for path in [log] + [f"{log}.{i}" for i in range(1, restarts + 1)]:
            os.remove(path)
        if store_path is None:
            self.drop_store()
        return first_report, outcome

    def alloc(self, n, sticky=False):
        v = f"{n},sticky" if sticky else str(n)
        rep, _ = self.case(f"FEDC_FAIL_ALLOC_AFTER={v}", {"FEDC_FAIL_ALLOC_AFTER": v}, sticky)
        self.tally["fired"] += rep["allocs"] >= n

    def store(self, n, full=False):
        v = f"{n},full,sticky" if full else str(n)
        rep, _ = self.case(f"FEDC_FAIL_STORE_AFTER={v}", {"FEDC_FAIL_STORE_AFTER": v}, full)
        self.tally["fired"] += rep["store_failures"] > 0

    # ---- real file systems ---------------------------------------------------
    def mount_tmpfs(self, size):
        mnt = os.path.join(self.job.dir, "mnt")
        os.makedirs(mnt, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt],
                           capture_output=True, text=True)
        return mnt if r.returncode == 0 else None

    def umount(self, mnt):
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)  # still busy: detach

    def disk_full(self):
        """A tmpfs filled up once the daemon has stored its initial model:
        the first commit meets ENOSPC and the daemon exits 4; with the space
        freed, the restarted daemon finishes the job."""
        mnt = self.mount_tmpfs("4m")
        if mnt is None:
            return "skipped (cannot mount a tmpfs: not root?)"
        filler = os.path.join(mnt, "filler")

        def fill():
            with open(filler, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e

        try:
            _, outcome = self.case("tmpfs disk full", {}, sticky=True,
                                   store_path=os.path.join(mnt, "fedc.db"), during=fill,
                                   fix=lambda: os.remove(filler), vfs=False)
            assert outcome == "exit 4", f"disk full: the daemon {outcome}, want exit 4"
            return "ok (exit 4, resumed)"
        finally:
            self.umount(mnt)

    def read_only(self):
        """A store on a file system remounted read-only: the daemon refuses
        to start (exit 4, naming the store) and changes nothing; remounted
        read-write, it resumes and finishes."""
        mnt = self.mount_tmpfs("8m")
        if mnt is None:
            return "skipped (cannot mount a tmpfs: not root?)"
        try:
            job = self.job
            log = self.fresh_store(os.path.join(mnt, "fedc.db"))
            p = self.start({}, log)  # creates the store and its initial model
            assert self.stop(p, "read-only") == 0
            os.remove(log)
            with open(job.store, "rb") as f:
                before = f.read()
            r = subprocess.run(["mount", "-o", "remount,ro", mnt], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            r = subprocess.run([os.path.join(BIN, "fedc-coordinator"), "--config", job.coord_ini],
                               capture_output=True, text=True, timeout=20)
            assert r.returncode == 4, f"read-only store: exit {r.returncode}: {r.stderr[-600:]}"
            assert job.store in r.stderr, r.stderr[-600:]
            assert not SANITIZER.search(r.stderr), f"read-only store: {r.stderr[-2000:]}"
            subprocess.run(["mount", "-o", "remount,rw", mnt], check=True)
            with open(job.store, "rb") as f:
                assert f.read() == before, "the read-only start changed the store"
            self.tally["runs"] += 1
            self.tally["exit 4"] += 1
            self.resume_on(job.store, "read-only, remounted read-write")
            return "ok (exit 4, resumed)"
        finally:
            self.umount(mnt)

    def resume_on(self, store, label):
        """Run the job to its end on an existing store (no new store)."""
        job = self.job
        log = os.path.join(job.dir, "resume.log")
        p = self.start({"FEDC_FAIL_ALLOC_AFTER": "0"}, log)
        clients = [job.start_client(k, keep=False) for k in (1, 2)]
        for k, c in enumerate(clients, 1):
            assert c.wait(timeout=FINISH_S) == 0, f"{label}: client {k} exited {c.returncode}"
        assert self.stop(p, label) == 0
        self.check_log(log, label, hooked=True)
        shas, _ = self.check_store(store, label)
        assert len(shas) == ROUNDS + 1, f"{label}: {len(shas) - 1} rounds committed"
        os.remove(log)


def main():
    long_run = "--long" in sys.argv[1:]
    t0 = time.time()
    f = Faults()
    print(f"  clean run: {f.allocs} allocations and {f.store_ops} store writes "
          f"after the daemon listens", flush=True)
    rng = random.Random(2024)
    failed = 0
    cases = 0

    def attempt(fn, *args):
        nonlocal failed, cases
        cases += 1
        try:
            fn(*args)
        except AssertionError as e:
            failed += 1
            print(f"  FAIL {fn.__name__}{args}: {e}", flush=True)
        if long_run and f.tally["runs"] % 100 == 0:
            print(f"  ... {f.tally['runs']} runs, {failed} failed, {time.time() - t0:.0f}s",
                  flush=True)

    if long_run:
        alloc_ns = range(1, f.allocs + 1)
        sticky_ns = range(1, f.allocs + 1, max(1, f.allocs // 40))
        store_ns = range(1, f.store_ops + 1)
        full_ns = range(1, f.store_ops + 1)
    else:
        alloc_ns = sorted(rng.sample(range(1, f.allocs + 1), 6))
        sticky_ns = [rng.randrange(f.allocs // 2, f.allocs)]
        store_ns = [1] + sorted(rng.sample(range(2, f.store_ops + 1), 2))
        full_ns = [1, rng.randrange(2, f.store_ops + 1)]
    for n in alloc_ns:
        attempt(f.alloc, n)
    for n in sticky_ns:
        attempt(f.alloc, n, True)
    for n in store_ns:
        attempt(f.store, n)
    for n in full_ns:
        attempt(f.store, n, True)
    real = {}
    skipped = 0
    for name, fn in (("disk full", f.disk_full), ("read-only", f.read_only)):
        cases += 1
        try:
            real[name] = fn()
            if real[name].startswith("skipped"):
                skipped += 1
                print(f"  skip {name}: {real[name]}", flush=True)
        except AssertionError as e:
            failed += 1
            real[name] = "FAIL"
            print(f"  FAIL {name}: {e}", flush=True)
    t = f.tally
    print(f"  injected: {len(alloc_ns)} allocation failures, {len(sticky_ns)} sticky, "
          f"{len(store_ns)} store I/O errors, {len(full_ns)} disk-full (sticky); "
          f"real disk full: {real['disk full']}; read-only: {real['read-only']}")
    print(f"  {t['runs']} runs, {t['fired']} hooks fired; the daemon kept going {t['kept going']}, "
          f"exited 4 {t['exit 4']}, was stopped after a sticky failure {t['stopped']}; "
          f"{t['restarts']} restarts; leaks {t['leaks']}, corrupted stores {t['corrupt']}; "
          f"{time.time() - t0:.0f}s")
    f.job.close(keep=failed > 0)
    print(f"fault_tests: {'ok' if not failed else f'{failed} failed'}")
    # the line scripts/run-tests.sh counts cases from
    print(f"fault_tests: {cases - failed - skipped} passed, {failed} failed, {skipped} skipped",
          flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
