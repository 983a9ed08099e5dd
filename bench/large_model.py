#!/usr/bin/python3
"""large_model.py - a large tensor job on loopback (bench/large_model.sh):
one F32 tensor of FEDC_LARGE_MB MiB (1024 by default), FEDC_LARGE_CLIENTS
sites (4) on bench/stream_trainer.py (numpy_trainer.py's tensor step in
slices, so the trainers' memory stays small), FEDC_LARGE_ROUNDS rounds (2),
over mutual TLS. Prints each round's time
(from its opening to its commit, from the coordinator's log), the job's time,
and the peak RSS (VmHWM) of the coordinator and of one fedc-client (the
trainer is a child process, not counted), sampled every 0.2 s
while they run, against the model's size, and the models' bytes down
(/metrics). FEDC_LARGE_STATE=1 gives each site a [client] state_dir (model
files, deltas rebuilt from them); FEDC_LARGE_DELTAS=0 or 1 sets [server]
model_deltas.
"""
import datetime
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.dont_write_bytecode = True
import numpy as np  # noqa: E402

import harness  # noqa: E402
from harness import Job, mem_kb  # noqa: E402
from trainer_tests import close, start_tensor_job  # noqa: E402

MIB = 1 << 20


def hwm(pid):
    try:
        return mem_kb(pid, "VmHWM") * 1024
    except (OSError, AssertionError):
        return 0


def start_site(job, k, samples, state=False):
    """Client k with bench/stream_trainer.py as its [trainer] command (and a
    [client] state_dir when state: models downloaded into files, deltas
    rebuilt from them)."""
    path = job.client_ini(k, keep=False)
    trainer = os.path.join(ROOT, "bench", "stream_trainer.py")
    if state:
        with open(path) as f:
            text = f.read()
        text = text.replace("[client]\n", f"[client]\nstate_dir = {job.dir}/state-{k}\n", 1)
        with open(path, "w") as f:
            f.write(text)
    with open(path, "a") as f:
        f.write(f"[trainer]\ncommand = /usr/bin/python3 {trainer} --samples {samples}\n"
                f"timeout_s = 3600\n")
    log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
    p = subprocess.Popen([os.path.join(harness.BIN, "fedc-client"), "--config", path],
                         stdout=log, stderr=log)
    job.procs.append(p)
    return p


def main():
    mb = int(os.environ.get("FEDC_LARGE_MB", "1024"))
    n_clients = int(os.environ.get("FEDC_LARGE_CLIENTS", "4"))
    rounds = int(os.environ.get("FEDC_LARGE_ROUNDS", "2"))
    state = os.environ.get("FEDC_LARGE_STATE", "0") == "1"
    deltas = os.environ.get("FEDC_LARGE_DELTAS", "")
    job = Job("large-model", n_clients, sizes=[10] * n_clients, rounds=rounds, model="tensors",
              round_timeout_s=3600, poll_s=1)
    if deltas in ("0", "1"):
        job.set_server_keys(model_deltas="true" if deltas == "1" else "false")
    try:
        n = mb * MIB // 4
        rng = np.random.default_rng(1)
        big = rng.standard_normal(size=(n // 1024, 1024), dtype=np.float32)
        start_tensor_job(job, {"big.weight": big}, "*num_batches_tracked=max")
        del big
        coord = job.procs[-1].pid
        # reading a model of gigabytes and storing its checkpoint 0 may take
        # the coordinator longer than start_tensor_job's 10 s wait
        job.wait_for(lambda: job.status() is not None or job.procs[-1].poll() is not None,
                     1800, "the coordinator to listen")
        assert job.procs[-1].poll() is None, "the coordinator exited while starting"
        t0 = time.time()
        procs = [start_site(job, k, 100 + k, state) for k in range(1, n_clients + 1)]
        peak_c = peak_k = 0
        while any(p.poll() is None for p in procs):
            peak_c = max(peak_c, hwm(coord))
            peak_k = max(peak_k, hwm(procs[0].pid))
            time.sleep(0.2)
        peak_c = max(peak_c, hwm(coord))
        # each round's opening and commit, from the coordinator's log
        events = {}
        with open(os.path.join(job.dir, "coordinator.log"), errors="replace") as f:
            for line in f:
                m = re.search(r'round=(\d+) msg="(opened|committed)"', line)
                if m:
                    stamp = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
                    events.setdefault((int(m.group(1)), m.group(2)), stamp)
        for k, p in enumerate(procs, 1):
            if p.returncode != 0:
                for name in (f"client-{k}.log", "coordinator.log"):
                    with open(os.path.join(job.dir, name), errors="replace") as f:
                        print(f"--- the end of {name}:\n" + "".join(f.readlines()[-12:]))
            assert p.returncode == 0, f"client {k} exit {p.returncode}"
        took = time.time() - t0
        assert job.committed() >= rounds, f"{job.committed()} rounds committed"
        model = mb * MIB
        print(f"large model: {mb} MiB F32 tensor ({n:,} values), {n_clients} clients, "
              f"{rounds} rounds, loopback, mutual TLS")
        for r in range(1, rounds + 1):
            a, b = events.get((r, "opened")), events.get((r, "committed"))
            if a and b:
                print(f"  round {r}: {(b - a).total_seconds():.1f} s from its opening to its "
                      f"commit (download, train, upload, fold, commit)")
        print(f"  job: {took:.1f} s")
        print(f"  coordinator peak RSS (VmHWM): {peak_c / MIB:.0f} MiB = {peak_c / model:.2f}x "
              f"the model")
        print(f"  client 1 peak RSS (VmHWM):    {peak_k / MIB:.0f} MiB = {peak_k / model:.2f}x "
              f"the model (its trainer process apart)")
        metrics = job.metrics() or ""

        def count(name, kind):
            m = re.search(r'^%s\{kind="%s"\} (\d+)$' % (name, kind), metrics, re.M)
            return int(m.group(1)) if m else 0
        down = sum(count("fedc_model_download_bytes_total", k) for k in ("full", "delta"))
        print(f"  models down: {count('fedc_model_downloads_total', 'full')} whole + "
              f"{count('fedc_model_downloads_total', 'delta')} deltas, {down / MIB:.0f} MiB "
              f"(state_dir {'on' if state else 'off'}, [server] model_deltas "
              f"{ {'0': 'off', '1': 'on'}.get(deltas, 'default (on)')})")
    finally:
        close(job)


if __name__ == "__main__":
    main()
