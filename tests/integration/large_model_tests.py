#!/usr/bin/env python3
"""large_model_tests.py - large-model mode ([server] spill_above_mb;
docs/tensor-jobs.md "Large models") on a real coordinator over mutual TLS
on loopback (harness.py), with fedc-client sites on the numpy trainer.

1. The same tensor job (two F32 tensors, LARGE_MODEL_SMALL_MB MiB in all, 3
   by default) run with the mode off and forced on (spill_above_mb below the
   model; the jobs' ids aside), updates sent in chunks (FEDC_UPLOAD_CHUNKED_MIN = 1 MiB) and the share
   cap on (one site with most of the samples), the forced run's first
   commit failing once before its durable write and its coordinator killed
   (SIGKILL) after round 1 and started again: every committed checkpoint
   is byte-identical, the mode's sums file <store>.acc exists only while the
   forced run runs (its store forced to keep checkpoints in chunk rows,
   FEDC_STORE_CHUNK_ABOVE = 256 KiB; exports equal too), and a job the mode cannot run (fedadam) is refused at
   start naming spill_above_mb and the strategy.
2. Memory: the coordinator's peak RSS (VmHWM) with a LARGE_MODEL_MB MiB
   model (32 by default; tests/long/test_large_model.sh: 256) in the mode,
   against 3 x the model plus the coordinator's own size measured with a
   tiny model in the same mode. The figures are printed.

Run under /usr/bin/python3 (Debian's, with numpy).
"""
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from harness import BIN, Skip, Suite, Job, mem_kb  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None

MIB = 1 << 20


def need_numpy():
    if np is None:
        raise Skip("numpy is not installed for this interpreter (run under /usr/bin/python3)")


def hwm(pid):
    try:
        return mem_kb(pid, "VmHWM") * 1024
    except (OSError, AssertionError):
        return 0


def run_job(name, mb, spill, sites, rounds, strategy=None, chunked=False, fail_commit=None,
            kill_after=None, chunk_above=None):
    """A tensor job of an F32 tensor of mb MiB and a small F32 head; sites
    (k -> samples). Returns the checkpoints (round -> blob), the
    coordinator's peak RSS, and whether <store>.acc was seen. fail_commit:
    the coordinator's FEDC_FAIL_COMMIT_AFTER (a commit attempt that fails
    before its durable write, then is retried); the log must say so.
    kill_after: the coordinator is killed (SIGKILL) once that round is
    committed and started again; the sites go on with it. chunk_above: the
    store's FEDC_STORE_CHUNK_ABOVE (checkpoints over it kept in chunk rows);
    the last round's export must equal its checkpoint."""
    from trainer_tests import start_tensor_job, start_external, close
    job = Job(name, len(sites), sizes=[10] * len(sites), rounds=rounds, model="tensors",
              round_timeout_s=300, poll_s=1)
    try:
        job.set_server_keys(spill_above_mb=spill)
        if strategy:
            with open(job.coord_ini) as f:
                text = f.read()
            with open(job.coord_ini, "w") as f:
                f.write(text.replace("[strategy]\n", f"[strategy]\nname = {strategy}\n", 1)
                        if "[strategy]\n" in text else text + f"\n[strategy]\nname = {strategy}\n")
        n = max(mb * MIB // 4, 1024)
        rng = np.random.default_rng(7)
        if fail_commit:
            os.environ["FEDC_FAIL_COMMIT_AFTER"] = fail_commit
        if chunk_above:
            os.environ["FEDC_STORE_CHUNK_ABOVE"] = str(chunk_above)
        try:
            start_tensor_job(job, {"big.weight": rng.normal(size=(n // 1024, 1024))
                                   .astype(np.float32),
                                   "head.weight": rng.normal(size=(16, 8)).astype(np.float32)},
                             "*num_batches_tracked=max")
        finally:
            os.environ.pop("FEDC_FAIL_COMMIT_AFTER", None)
            os.environ.pop("FEDC_STORE_CHUNK_ABOVE", None)
        coord = job.procs[-1].pid
        # chunked: updates of 1 MiB or more go as chunked uploads (spooled, mapped)
        env = {"FEDC_UPLOAD_CHUNKED_MIN": str(MIB)} if chunked else None
        procs = [start_external(job, k, f"--samples {s}", keep=False, timeout_s=300, env=env)
                 for k, s in sites.items()]
        peak, acc_seen, must_kill = 0, False, kill_after is not None
        end = time.time() + 600
        while any(p.poll() is None for p in procs):
            assert time.time() < end, "the job did not finish in 600 s"
            if kill_after is not None:
                with job.db() as con:
                    done = con.execute("SELECT max(round) FROM checkpoints").fetchone()[0] or 0
                if done >= kill_after:
                    kill_after = None
                    old = [p for p in job.procs if p.pid == coord][0]
                    old.send_signal(signal.SIGKILL)
                    old.wait()
                    log = open(os.path.join(job.dir, "coordinator.log"), "ab")
                    env = dict(os.environ)
                    if chunk_above:
                        env["FEDC_STORE_CHUNK_ABOVE"] = str(chunk_above)
                    p = subprocess.Popen([os.path.join(BIN, "fedc-coordinator"), "--config",
                                          job.coord_ini], stdout=log, stderr=log, env=env)
                    job.procs.append(p)
                    coord = p.pid
            peak = max(peak, hwm(coord))
            acc_seen = acc_seen or os.path.exists(job.store + ".acc")
            time.sleep(0.1)
        peak = max(peak, hwm(coord))
        for k, q in enumerate(procs, 1):
            if q.returncode != 0:
                with open(os.path.join(job.dir, f"client-{k}.log"), errors="replace") as f:
                    tail = f.read().strip().splitlines()[-4:]
                raise AssertionError(f"client {k} exit {q.returncode}: " + " | ".join(tail))
        with open(os.path.join(job.dir, "coordinator.log"), errors="replace") as f:
            text = f.read()
        assert not fail_commit or 'msg="commit failed; retrying"' in text, "no commit failed"
        assert not must_kill or (kill_after is None and 'msg="job resumed"' in text), \
            "the coordinator was not killed and resumed"
        ckpts = {r: blob for r, (blob, _) in job.checkpoints().items()}
        assert len(ckpts) == rounds + 1, sorted(ckpts)
        with job.db() as con:
            chunked_rows = con.execute("SELECT count(*) FROM checkpoints WHERE length(model) = 0"
                                       ).fetchone()[0]
        assert chunked_rows == (rounds + 1 if chunk_above else 0), \
            f"{chunked_rows} checkpoints of {rounds + 1} in chunk rows"
        export = os.path.join(job.dir, "export.safetensors")
        subprocess.run([os.path.join(BIN, "fedc-coordinator"), "--config", job.coord_ini,
                        "export", str(rounds), export], check=True, capture_output=True)
        with open(export, "rb") as f:
            assert f.read() == ckpts[rounds], "the export is not the last checkpoint"
        return ckpts, peak, acc_seen
    finally:
        close(job)


def test_identical():
    need_numpy()
    mb = int(os.environ.get("LARGE_MODEL_SMALL_MB", "3"))
    sites = {1: 100, 2: 900, 3: 140}  # site 2 has most: the share cap cuts it
    plain, _, acc_plain = run_job("large-off", mb, 0, sites, 2, chunked=True)
    # its first commit fails once: the global model is read back from the
    # store (the initial checkpoint) and the round committed again; then the
    # coordinator is killed and resumes from checkpoint 1 (held once)
    # and its store keeps every checkpoint in chunk rows of 256 KiB
    spilled, _, acc_spilled = run_job("large-on", mb, mb / 4, sites, 2, chunked=True,
                                      fail_commit="1", kill_after=1, chunk_above=256 << 10)
    assert not acc_plain and acc_spilled, (acc_plain, acc_spilled)
    import json

    def job_id(blob):
        return json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])["__metadata__"]["job"]
    # the two jobs' ids differ (the init file's path is in the job's spec):
    # with the one id put in place of the other, every byte must be the same
    ida, idb = job_id(plain[0]).encode(), job_id(spilled[0]).encode()
    for r in plain:
        assert len(ida) == len(idb) and plain[r].count(ida) == 1, r
        assert plain[r] == spilled[r].replace(idb, ida), \
            f"checkpoint {r} differs with large-model mode on"
    print(f"       {len(plain)} checkpoints of a {mb} MiB job, share cap on, chunked updates, "
          f"a failed commit retried, a kill -9 resumed, checkpoints in "
          f"chunk rows: byte-identical with large-model mode and chunking on and off, "
          f"exports too")
    try:
        run_job("large-adam", 1, 0.25, {1: 10}, 1, strategy="fedadam")
        raise AssertionError("fedadam in large-model mode was not refused")
    except AssertionError as e:
        msg = str(e)
        if "refused the tensor job" not in msg:
            raise
        assert "spill_above_mb" in msg and "[strategy] name" in msg, msg
        print(f"       fedadam refused: {msg.split('fedc-coordinator: ')[-1][:150]}...")


def test_memory():
    need_numpy()
    mb = int(os.environ.get("LARGE_MODEL_MB", "32"))
    model = mb * MIB
    _, base, _ = run_job("large-tiny", 0, 0.001, {1: 100, 2: 120}, 1)
    _, peak, acc = run_job("large-mem", mb, mb / 2, {1: 100, 2: 120}, 2)
    assert acc, "large-model mode was not on"
    limit = 3 * model + base
    print(f"       coordinator peak RSS: {peak / MIB:.0f} MiB with a {mb} MiB model "
          f"({peak / model:.2f}x the model; {(peak - base) / model:.2f}x over the "
          f"{base / MIB:.0f} MiB of a tiny-model coordinator); the bound 3x + that is "
          f"{limit / MIB:.0f} MiB")
    assert peak < limit, f"peak RSS {peak} >= {limit}"


if __name__ == "__main__":
    suite = Suite("large_model_tests")
    only = sys.argv[1:]
    for fn in (test_identical, test_memory):
        if not only or fn.__name__ in only:
            suite.run(fn)
    suite.finish()
