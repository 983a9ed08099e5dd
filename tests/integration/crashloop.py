#!/usr/bin/env python3
"""crashloop.py - the coordinator killed with SIGKILL again and again over
one job ends on exactly the model of a run that was never interrupted
(docs/hardening.md).

One job (softmax, 4 clients, 25 rounds, min_clients = clients_per_round = 4,
so every round has the same participants and each client's training is
seeded by (job seed, round, client)) is run twice with the same
certificates and data:

1. with no crash: the reference, round by round;
2. on a new store, with the coordinator killed with SIGKILL at random
   moments (seeded delays after each restart, at whatever it is doing:
   waiting for the clients, serving a round, committing) and restarted at
   once on the same store; the clients are never restarted.

After every kill, the store is read as the dead coordinator left it: every
round committed before must still have exactly the same checkpoint (bytes
and sha256), rounds are contiguous, and PRAGMA integrity_check is ok. At
the end every checkpoint, the final model included, equals the reference
tensor for tensor (the containers' metadata carries each store's random job
id, so whole files differ), and every client exited 0.

    crashloop.py                   50 kills (make test-long)
    crashloop.py --kills 5 --rounds 8    the quick version (make test)
"""
import argparse
import collections
import json
import os
import random
import signal
import sqlite3
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Job, read_safetensors  # noqa: E402


def tensors(blob):
    t, _ = read_safetensors(blob)
    return {name: (shape, arr.tobytes()) for name, (shape, arr) in t.items()}


def snapshot(job):
    """{round: (sha256, model bytes)} of the store as it is on disk now;
    checks integrity, contiguous rounds and each round's sha."""
    con = sqlite3.connect(f"file:{job.store}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)], "integrity_check"
        rounds = {r: sha for r, sha in con.execute("SELECT round, sha256 FROM rounds")}
        ckpt = {r: (sha, blob) for r, blob, sha in
                con.execute("SELECT round, model, sha256 FROM checkpoints")}
    finally:
        con.close()
    assert sorted(rounds) == list(range(1, len(rounds) + 1)), f"rounds {sorted(rounds)}"
    assert sorted(ckpt) == list(range(0, len(rounds) + 1)), f"checkpoints {sorted(ckpt)}"
    for r, sha in rounds.items():
        assert ckpt[r][0] == sha, f"round {r}: the rounds row and the checkpoint disagree"
    return ckpt


def phase(job):
    """What the coordinator is doing, from /v1/status (for the tally)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{job.status_port}/v1/status",
                                    timeout=0.5) as r:
            s = json.loads(r.read())
        if s["state"] == "open" and s.get("reported", 0) > 0:
            return "open, updates in"
        return s["state"]
    except (OSError, ValueError, KeyError):
        return "starting"


def run(args):
    # enough local data that a round lasts a few tenths of a second, so that
    # the kills land in every part of it
    job = Job("crashloop", args.clients, sizes=[args.rows] * args.clients, rounds=args.rounds,
              clients_per_round=args.clients, min_clients=args.clients,
              round_timeout_s=60, poll_s=1, epochs=args.epochs)
    try:
        # ---- 1. no crash -------------------------------------------------------
        t0 = time.time()
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k, keep=False) for k in range(1, args.clients + 1)]
        for k, p in enumerate(clients, 1):
            assert p.wait(timeout=300) == 0, f"clean run: client {k} exited {p.returncode}"
        job.coordinator.send_signal(signal.SIGTERM)
        assert job.coordinator.wait(timeout=20) == 0
        ref = {r: tensors(blob) for r, (_, blob) in snapshot(job).items()}
        assert len(ref) == args.rounds + 1
        t_clean = time.time() - t0

        # ---- 2. the same job, killed args.kills times ----------------------------
        t0 = time.time()
        job.store = os.path.join(job.dir, "crashed.db")
        job.write_coordinator_config()
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k, keep=False) for k in range(1, args.clients + 1)]
        rng = random.Random(args.seed)
        before, phases, kills, progress = {}, collections.Counter(), 0, []
        while kills < args.kills:
            # spread the kills over the whole job: while it runs ahead of
            # them, kill sooner after the restart
            # Two of three kills land inside a round (a random delay after
            # it opens: training, updates arriving, the commit), the others
            # anywhere after the restart. A round can commit moments after a
            # restart (the clients resend the updates they had made), so
            # while the job runs ahead of the kills they come before the
            # clients are back, so that they spread over all its rounds.
            ahead = (len(before) - 1) > kills * (args.rounds - 3) / args.kills
            inside, delay = rng.random() < 2 / 3, rng.uniform(0.0, 1.0)
            if ahead:
                time.sleep(delay * 0.05)
            elif inside:
                end = time.time() + 10
                while not phase(job).startswith("open") and time.time() < end:
                    time.sleep(0.01)
                time.sleep(delay * args.round_s)
            else:
                time.sleep(delay * args.max_delay)
            assert any(p.poll() is None for p in clients), \
                f"the job finished after {kills} kills ({progress}); give it more rounds"
            phases[phase(job)] += 1
            job.coordinator.send_signal(signal.SIGKILL)
            job.coordinator.wait()
            kills += 1
            now = snapshot(job)
            for r, (sha, blob) in before.items():
                assert now[r][0] == sha and now[r][1] == blob, \
                    f"kill {kills}: checkpoint {r} changed"
            for r, (_, blob) in now.items():
                assert tensors(blob) == ref[r], \
                    f"kill {kills}: checkpoint {r} differs from the run without crashes"
            before = now
            progress.append(len(now) - 1)
            job.start_coordinator()  # at once, on the same store
        for k, p in enumerate(clients, 1):
            assert p.wait(timeout=300) == 0, f"client {k} exited {p.returncode} (never restarted)"
        job.coordinator.send_signal(signal.SIGTERM)
        assert job.coordinator.wait(timeout=20) == 0
        final = snapshot(job)
        for r, (sha, blob) in before.items():
            assert final[r][0] == sha and final[r][1] == blob, f"checkpoint {r} changed at the end"
        assert len(final) == len(ref), f"{len(final) - 1} rounds committed, want {args.rounds}"
        for r, (_, blob) in final.items():
            assert tensors(blob) == ref[r], f"checkpoint {r} differs from the run without crashes"
        # the audit trail survived every kill: one record per round, chained
        a = job.coordinator_cmd("audit")
        assert a.returncode == 0 and f"{args.rounds} committed rounds, 0 findings" in a.stdout, \
            f"audit after {kills} kills: {a.stdout}{a.stderr}"
        t_crash = time.time() - t0
        n_floats = sum(len(b) // 4 for _, b in ref[args.rounds].values())
        print(f"  {kills} SIGKILLs over {args.rounds} rounds, {args.clients} clients never "
              f"restarted; killed while {dict(phases)}; rounds committed at each kill: "
              f"{progress}")
        print(f"  final model identical to the run without crashes ({n_floats} floats), and "
              f"all {args.rounds + 1} checkpoints; no committed checkpoint changed across "
              f"{kills} restarts")
        print(f"  audit trail intact: {args.rounds} records chained across {kills} kills")
        print(f"  run without crashes {t_clean:.1f}s, run with {kills} crashes {t_crash:.1f}s")
    finally:
        job.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rows", type=int, default=6000, help="training rows per client")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--max-delay", type=float, default=0.6,
                    help="a kill anywhere comes uniform(0, this) seconds after a restart")
    ap.add_argument("--round-s", type=float, default=0.2,
                    help="a kill inside a round comes uniform(0, this) seconds after it opens")
    args = ap.parse_args()
    try:
        run(args)
    except AssertionError as e:
        print(f"  FAIL {e}")
        print("crashloop: FAIL")
        print("crashloop: 0 passed, 1 failed, 0 skipped")  # for scripts/run-tests.sh
        sys.exit(1)
    print("crashloop: ok")
    print("crashloop: 1 passed, 0 failed, 0 skipped")


if __name__ == "__main__":
    main()
