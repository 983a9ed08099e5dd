#!/usr/bin/python3
"""early_fold.py - a chunked update folded as it arrives against folded at
completion (bench/early_fold.sh; docs/protocol.md "Chunked uploads"): a
tensor job of one F32 tensor of FEDC_EFOLD_MB MiB (256), FEDC_EFOLD_CLIENTS
sites (3) on the numpy trainer uploading in chunks, FEDC_EFOLD_ROUNDS rounds
(2), [strategy] max_client_share = FEDC_EFOLD_SHARE (0; "default" leaves
the key out: the share cap at its default, 0.5) with site 1 claiming
FEDC_EFOLD_BIG samples when set (the cap then cuts its weight), run with the coordinator's FEDC_UPLOAD_EARLY_FOLD=0 and =1, with FedAvg's
sums in large-model mode (the default above [server] spill_above_mb = 128)
and in memory (spill_above_mb = 0). Prints, for each, every round's time
from the last byte of its last update (the coordinator's "last chunk in")
to its commit, and the coordinator's peak RSS (VmHWM), and checks that the
committed models are the same both ways.
"""
import datetime
import hashlib
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.dont_write_bytecode = True
import numpy as np  # noqa: E402

from harness import Job, mem_kb  # noqa: E402
from trainer_tests import close, start_external, start_tensor_job  # noqa: E402

MIB = 1 << 20


def hwm(pid):
    try:
        return mem_kb(pid, "VmHWM") * 1024
    except (OSError, AssertionError):
        return 0


def stamp(line):
    return datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")


def run(mb, n_clients, rounds, early, spill, share, big_count):
    job = Job("early-fold", n_clients, sizes=[10] * n_clients, rounds=rounds, model="tensors",
              round_timeout_s=3600, poll_s=1)
    try:
        if not spill:
            job.set_server_keys(spill_above_mb=0)
        with open(job.coord_ini) as f:
            text = f.read()
        with open(job.coord_ini, "w") as f:
            f.write(text + ("" if share == "default"
                            else f"\n[strategy]\nmax_client_share = {share}\n"))
        n = mb * MIB // 4
        rng = np.random.default_rng(1)
        big = rng.standard_normal(size=(n // 1024, 1024), dtype=np.float32)
        os.environ["FEDC_UPLOAD_EARLY_FOLD"] = "1" if early else "0"
        try:
            start_tensor_job(job, {"big.weight": big}, "*num_batches_tracked=max")
        finally:
            os.environ.pop("FEDC_UPLOAD_EARLY_FOLD", None)
        del big
        coord = job.procs[-1].pid
        procs = [start_external(job, k,
                                f"--samples {big_count if k == 1 and big_count else 100 + k}",
                                keep=False, timeout_s=3600)
                 for k in range(1, n_clients + 1)]
        peak = 0
        while any(p.poll() is None for p in procs):
            peak = max(peak, hwm(coord))
            time.sleep(0.2)
        peak = max(peak, hwm(coord))
        for k, p in enumerate(procs, 1):
            assert p.returncode == 0, f"client {k} exit {p.returncode}"
        last, done, folded, cut = {}, {}, 0, 0
        with open(os.path.join(job.dir, "coordinator.log"), errors="replace") as f:
            for line in f:
                m = re.search(r'round=(\d+) (?:client=\d+ )?msg="(last chunk in|committed)"', line)
                if m and m.group(2) == "last chunk in":
                    last[int(m.group(1))] = stamp(line)
                elif m:
                    done.setdefault(int(m.group(1)), stamp(line))
                folded += 'msg="update folded as it arrived"' in line
                cut += 'msg="updates limited" capped=' in line
        assert folded == (n_clients * rounds if early else 0), folded
        assert cut == (rounds if big_count else 0), f"the share cap cut {cut} rounds" 
        secs = [(done[r] - last[r]).total_seconds() for r in range(1, rounds + 1)]
        import fedc
        h = hashlib.sha256()
        for r, (blob, _) in sorted(job.checkpoints().items()):
            h.update(fedc.st.loads(blob)["big.weight"].tobytes())
        return secs, peak, h.hexdigest()
    finally:
        close(job)


def main():
    mb = int(os.environ.get("FEDC_EFOLD_MB", "256"))
    n_clients = int(os.environ.get("FEDC_EFOLD_CLIENTS", "3"))
    rounds = int(os.environ.get("FEDC_EFOLD_ROUNDS", "2"))
    share = os.environ.get("FEDC_EFOLD_SHARE", "0")
    big_count = int(os.environ.get("FEDC_EFOLD_BIG", "0"))
    print(f"early folds: {mb} MiB F32 tensor, {n_clients} clients, {rounds} rounds, chunked "
          f"uploads on loopback over mutual TLS; max_client_share {share}"
          + (f", site 1 claims {big_count} samples" if big_count else ""))
    for spill in (True, False):
        shas = set()
        for early in (False, True):
            secs, peak, sha = run(mb, n_clients, rounds, early, spill, share, big_count)
            shas.add(sha)
            print(f"  {'large-model mode' if spill else 'sums in memory  '} "
                  f"{'early folds     ' if early else 'fold at the end '}: last byte -> commit "
                  + ", ".join(f"{s:.2f} s" for s in secs)
                  + f"; coordinator peak RSS {peak / MIB:.0f} MiB = {peak / (mb * MIB):.2f}x "
                  f"the model")
        assert len(shas) == 1, "the committed models differ"


if __name__ == "__main__":
    main()
