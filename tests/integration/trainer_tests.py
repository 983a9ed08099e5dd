#!/usr/bin/env python3
"""trainer_tests.py - external trainers at the site ([trainer] command),
with real processes on loopback (harness.py).

  * mixed federation: one softmax job, two sites on the built-in trainer
    and two on a numpy external trainer (tests/integration/trainers/
    numpy_trainer.py, written with python/fedc), one with an evaluate
    command too; every update accepted, every committed model the
    sample-weighted average of the updates sent, the evaluate command's
    predictions scored by the client;
  * failures: trainers that exit non-zero, hang past [trainer] timeout_s,
    write NaN, write a tensor of the wrong shape, or give no num_samples:
    each is logged at its site in one line naming the round and the cause,
    nothing is sent for it (no refused update at the coordinator), the
    coordinator records it (/v1/status, /metrics) and the round commits
    with the other sites at once, and every client serves the next rounds
    to the end of the job;
  * a tensor job (F32 + F16 + an integer buffer) over 5 rounds, committed
    models against the weighted average recomputed from the trainers'
    outputs; skipped while the coordinator refuses [model] type = tensors.
  * the same under secure aggregation (an I64 buffer kept), 3 rounds:
    every round commits from the masked float deltas, no plain update
    sent, each float tensor within the fixed point's 2^-(f+1) of the
    weighted average.

The numpy trainer runs under /usr/bin/python3 (Debian's, with numpy); the
suite is skipped when that has no numpy.
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, Job, Skip, Suite  # noqa: E402
from coordinator_tests import check_averages  # noqa: E402

PY = "/usr/bin/python3"
TRAINER = os.path.join(ROOT, "tests/integration/trainers/numpy_trainer.py")


def have_numpy():
    return subprocess.run([PY, "-c", "import numpy"], capture_output=True).returncode == 0


def start_external(job, k, args="", timeout_s=60, keep=True, env=None, evaluate=False):
    """Client k with the numpy trainer as its [trainer] command (and
    [trainer] evaluate when asked)."""
    path = job.client_ini(k, keep=keep)
    data = os.path.join(job.dir, "data", f"client-{k}")
    cmd = (f"PYTHONPATH={ROOT}/python {PY} {TRAINER} --data {data} {args}").strip()
    with open(path, "a") as f:
        f.write(f"[trainer]\ncommand = {cmd}\ntimeout_s = {timeout_s}\n")
        if evaluate:
            f.write(f"evaluate = PYTHONPATH={ROOT}/python {PY} {TRAINER} --data {data}\n")
    log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", path], stdout=log,
                         stderr=log, env=dict(os.environ, **(env or {})))
    job.procs.append(p)
    return p


def close(job):
    """SIGTERM first, so that a client still running stops its trainer's
    process group (job.close's SIGKILL would leave it running)."""
    for p in job.procs:
        if p.poll() is None:
            p.terminate()
    for p in job.procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    job.close()


def client_log(job, k):
    with open(os.path.join(job.dir, f"client-{k}.log"), errors="replace") as f:
        return f.read()


def test_mixed_federation():
    if not have_numpy():
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    job = Job("mixed", 4, sizes=[200, 300, 400, 500], rounds=3)
    try:
        job.allow_all()
        job.start_coordinator()
        procs = [job.start_client(1), job.start_client(2),
                 start_external(job, 3), start_external(job, 4, evaluate=True)]
        for k, p in enumerate(procs, 1):
            assert p.wait(timeout=120) == 0, f"client {k} did not finish with exit 0"
        assert job.committed() == 3
        st = job.status()
        assert all(r["clients"] == 4 for r in st["rounds"]), st["rounds"]
        assert [r["samples"] for r in st["rounds"]] == [1400] * 3
        worst = check_averages(job, 3)
        m = job.metrics()
        assert re.search(r'fedc_updates_rejected_total\{reason="(bad_shape|non_finite)"\} 0', m)
        for k in (3, 4):
            assert 'msg="update accepted"' in client_log(job, k)
        # site 4's evaluate command: predictions on its rows, accuracy by the client
        evals = re.findall(r'msg="global model evaluated" round=(\d+) test_acc=([0-9.]+) '
                           r'test_loss=([0-9.]+) test_samples=500', client_log(job, 4))
        assert [int(r) for r, _, _ in evals] == [1, 2, 3], evals
        accs = [float(a) for _, a, _ in evals]
        assert accs[0] < 0.3 < accs[2], f"accuracy of the global models by round: {accs}"
        print(f"       2 built-in + 2 numpy sites, 3 rounds, max rel. error {worst:.2e}")
    finally:
        close(job)


def test_trainer_failures():
    if not have_numpy():
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    # site 1: built-in; 2: exits 3 in round 2; 3: NaN in round 3; 4: wrong
    # shape in round 4; 5: hangs in round 2 (killed after 3 s); 6: no
    # num_samples in round 5
    job = Job("tfail", 6, sizes=[200] * 6, rounds=5, min_clients=2, round_timeout_s=60)
    fails = {2: ("exit", 2), 3: ("nan", 3), 4: ("shape", 4), 5: ("hang", 2), 6: ("nosamples", 5)}
    try:
        job.allow_all()
        job.start_coordinator()
        t0 = time.time()
        procs = {1: job.start_client(1)}
        for k, (mode, r) in fails.items():
            procs[k] = start_external(job, k, f"--fail {mode}@{r}", timeout_s=3)
        for k, p in procs.items():
            assert p.wait(timeout=150) == 0, f"client {k} did not finish with exit 0"
        secs = time.time() - t0
        assert job.committed() == 5
        # no round waited for its 60 s deadline: failures close it early
        assert secs < 60, f"the job took {secs:.0f} s"
        ids = job.client_ids()
        k_of = {ids[job.fingerprint(k)]: k for k in range(1, 7)}
        for r in range(1, 6):
            sent = {k_of[cid] for cid, _, _ in job.updates_of(r)}
            want = {k for k in range(1, 7) if fails.get(k, ("", 0))[1] != r}
            assert sent == want, f"round {r}: updates from {sorted(sent)}, want {sorted(want)}"
            for k in set(range(1, 7)) - want:
                assert not os.path.exists(os.path.join(job.dir, f"updates-{k}",
                                                       f"round-{r}.safetensors")), \
                    f"site {k} kept an update for its failed round {r}"
        check_averages(job, 5)
        causes = {2: "exited with status 3", 3: "'layers.0.weight'[3] is NaN",
                  4: "tensor 'layers.0.weight' has shape [2, 2] in the update",
                  5: "timed out after 3 s", 6: "num_samples is missing"}
        for k, cause in causes.items():
            lines = [ln for ln in client_log(job, k).splitlines() if "trainer failed" in ln]
            assert len(lines) == 1, f"site {k}: {len(lines)} 'trainer failed' lines"
            r = fails[k][1]
            assert f"round={r}" in lines[0] and cause in lines[0], f"site {k}: {lines[0]}"
            assert 'msg="failure reported"' in client_log(job, k)
        st = job.status()
        fpr = {job.fingerprint(k): k for k in range(1, 7)}
        for c in st["clients"]:
            k = fpr[c["fingerprint"]]
            assert c["trainer_failures"] == (1 if k in fails else 0), c
            if k in fails:
                assert c["last_failure_round"] == fails[k][1], c
        m = job.metrics()
        assert "fedc_trainer_failures_total 5" in m, "metrics lack the 5 failures"
        for reason in ("bad_shape", "non_finite", "bad_container", "bad_metadata"):
            assert f'fedc_updates_rejected_total{{reason="{reason}"}} 0' in m, reason
        left = subprocess.run(["pgrep", "-f", "--", f"--data {job.dir}/data/client-5 --fail hang"],
                              capture_output=True, text=True)
        assert left.returncode in (0, 1), left.stderr
        left = left.stdout.split()
        assert not left, f"the hung trainer still runs: {left}"
        print(f"       5 failures reported, 5 rounds committed in {secs:.1f} s")
    finally:
        close(job)


def test_tensor_path_on_a_dense_job():
    """The rounds of a tensor job (the model and the update as containers,
    checked and encoded again by the client) on a softmax job:
    FEDC_TEST_TRAINER_ST=1 makes fedc-client use that path."""
    if not have_numpy():
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    job = Job("stpath", 4, sizes=[200, 250, 300, 350], rounds=3, min_clients=2)
    st_env = {"FEDC_TEST_TRAINER_ST": "1"}
    try:
        job.allow_all()
        job.start_coordinator()
        procs = [job.start_client(1), start_external(job, 2, env=st_env),
                 start_external(job, 3, "--fail nan@2", env=st_env),
                 start_external(job, 4, "--fail shape@3", env=st_env)]
        for k, p in enumerate(procs, 1):
            assert p.wait(timeout=120) == 0, f"client {k} did not finish with exit 0"
        assert job.committed() == 3
        ids = job.client_ids()
        k_of = {ids[job.fingerprint(k)]: k for k in range(1, 5)}
        want = {1: {1, 2, 3, 4}, 2: {1, 2, 4}, 3: {1, 2, 3}}
        for r, ks in want.items():
            assert {k_of[cid] for cid, _, _ in job.updates_of(r)} == ks, r
        worst = check_averages(job, 3)
        assert "tensor 'layers.0.weight'[3] is not finite" in client_log(job, 3)
        assert ("tensor 'layers.0.weight' has shape [2, 2] in the update, [10, 784] in the "
                "global model") in client_log(job, 4)
        m = job.metrics()
        assert "fedc_trainer_failures_total 2" in m
        for reason in ("bad_shape", "non_finite", "bad_container", "bad_metadata"):
            assert f'fedc_updates_rejected_total{{reason="{reason}"}} 0' in m, reason
        print(f"       tensor path: 3 rounds, 2 failures reported, max rel. error {worst:.2e}")
    finally:
        close(job)


def test_failure_below_quorum():
    """A failure that leaves the round below quorum: the round is abandoned
    and opens again after a short pause, the failed site is asked anew and trains it
    (its trainer fails only once), and the job goes on to the end."""
    if not have_numpy():
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    job = Job("tquorum", 2, sizes=[150, 150], rounds=3, min_clients=2)
    try:
        job.allow_all()
        job.start_coordinator()
        marker = os.path.join(job.dir, "failed-once")
        procs = [job.start_client(1), start_external(job, 2, f"--fail exit@2 --fail-once {marker}")]
        for k, p in enumerate(procs, 1):
            assert p.wait(timeout=120) == 0, f"client {k} did not finish with exit 0"
        assert job.committed() == 3
        assert all(len(job.updates_of(r)) == 2 for r in (1, 2, 3))
        with open(os.path.join(job.dir, "coordinator.log"), errors="replace") as f:
            abandoned = f.read().count('msg="abandoned below quorum"')
        assert abandoned == 1, f"{abandoned} rounds abandoned, want 1"
        assert client_log(job, 2).count("trainer failed") == 1
        check_averages(job, 3)
    finally:
        close(job)


def test_failing_site_backs_off():
    """A site whose trainer fails every time, with min_clients = every site:
    the round is abandoned again and again, each time after a longer pause
    (0.25 s doubling), never in a tight loop."""
    if not have_numpy():
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    job = Job("tbackoff", 2, sizes=[150, 150], rounds=2, min_clients=2, round_timeout_s=60)
    try:
        job.allow_all()
        job.start_coordinator()
        job.start_client(1)
        start_external(job, 2, "--fail exit@1")
        time.sleep(6.0)
        with open(os.path.join(job.dir, "coordinator.log"), errors="replace") as f:
            log = f.read()
        pauses = [float(x) for x in re.findall(r'abandoned below quorum".*reopen_in_s=([0-9.]+)', log)]
        assert job.committed() == 0
        # 0.25 + 0.5 + 1 + 2 + 4 s of pauses: at most 6 abandonments in 6 s
        # (without the pause a round of 150 rows is abandoned every ~50 ms)
        assert 2 <= len(pauses) <= 6, f"{len(pauses)} rounds abandoned in 6 s: {pauses}"
        assert pauses[:3] == [0.25, 0.5, 1.0][:len(pauses[:3])], pauses
        print(f"       {len(pauses)} abandonments in 6 s, pauses {pauses}")
    finally:
        close(job)


def test_stop_while_training():
    """SIGTERM to fedc-client while its trainer runs: the trainer's process
    group is stopped with it, and the client exits 5 (interrupted)."""
    if not have_numpy():
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    job = Job("tstop", 1, sizes=[100], rounds=2)
    try:
        job.allow_all()
        job.start_coordinator()
        p = start_external(job, 1, "--fail hang@1")
        pattern = f"--data {job.dir}/data/client-1 --fail hang"

        def trainer_pids():
            r = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True)
            assert r.returncode in (0, 1), r.stderr
            return r.stdout.split()
        job.wait_for(trainer_pids, 30, "the trainer to start")
        time.sleep(0.5)
        p.send_signal(15)
        assert p.wait(timeout=20) == 5, f"fedc-client exit {p.returncode}, want 5"
        job.wait_for(lambda: not trainer_pids(), 5, "the trainer to be gone")
    finally:
        close(job)


def start_tensor_job(job, init_tensors, rule):
    """Write init_tensors (name -> numpy array) as the tensor job's initial
    model with [model] integer_rule = rule, and start its coordinator;
    returns the init file's path."""
    import fedc
    init = os.path.join(job.dir, "init.safetensors")
    fedc.st.save(init, init_tensors)
    with open(job.coord_ini) as f:
        text = f.read()
    text = text.replace("type = tensors\n", f"type = tensors\ninit = {init}\n"
                        f"integer_rule = {rule}\n")
    # a tensor job's shapes come from init; the coordinator runs no model
    text = text.replace("inputs = 784\n", "").replace("classes = 10\n", "")
    text = re.sub(r"(?m)^test(_labels)? = .*\n", "", text)
    with open(job.coord_ini, "w") as f:
        f.write(text)
    r = job.coordinator_cmd("allow", job.pki("client-1.pem"), "--name", "site-1")
    assert r.returncode == 0, f"allow on a tensor job's store: {r.stderr.strip()[-300:]}"
    job.allow_all()
    log = open(os.path.join(job.dir, "coordinator.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "fedc-coordinator"), "--config", job.coord_ini],
                         stdout=log, stderr=log)
    job.procs.append(p)
    end = time.time() + 10
    while time.time() < end and job.status() is None and p.poll() is None:
        time.sleep(0.05)
    if p.poll() is not None:
        with open(os.path.join(job.dir, "coordinator.log"), errors="replace") as f:
            why = f.read().strip().splitlines()[-1:]
        raise AssertionError(f"the coordinator refused the tensor job: {' '.join(why)[:300]}")
    return init


def start_tensor_sites(job, samples):
    """One numpy-trainer site per entry of samples (k -> its sample count),
    each keeping its trainer's outputs in out-<k>."""
    procs = []
    for k, n in samples.items():
        keep = os.path.join(job.dir, f"out-{k}")
        os.makedirs(keep)
        procs.append(start_external(job, k, f"--samples {n} --keep {keep}", keep=False))
    return procs


def test_tensor_job():
    if not have_numpy():
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import numpy as np
    import fedc
    job = Job("tensors", 3, sizes=[100] * 3, rounds=5, model="tensors")
    try:
        rng = np.random.default_rng(3)
        init = start_tensor_job(
            job, {"conv.weight": rng.normal(size=(4, 3, 3)).astype(np.float32),
                  "fc.weight": rng.normal(size=(5, 6)).astype(np.float16),
                  "bn.num_batches_tracked": np.array(7, dtype=np.int64)},
            "*num_batches_tracked=max")
        samples = {1: 120, 2: 240, 3: 175}  # none over [strategy] max_client_share (0.5)
        procs = start_tensor_sites(job, samples)
        for k, q in enumerate(procs, 1):
            assert q.wait(timeout=120) == 0, f"client {k} did not finish with exit 0"
        ckpt = job.checkpoints()
        worst = 0.0
        prev = fedc.st.load(init)
        for r in range(1, 6):
            outs = [fedc.st.load(os.path.join(job.dir, f"out-{k}", f"round-{r}.safetensors"))
                    for k in samples]
            total = sum(samples.values())
            got = fedc.st.loads(ckpt[r][0])
            for name in prev:
                assert got.dtypes[name] == prev.dtypes[name], (name, got.dtypes[name])
                if name.endswith("num_batches_tracked"):
                    assert int(got[name]) == max(int(o[name]) for o in outs), name
                    continue
                avg = sum(samples[k] * outs[i][name].astype(np.float64)
                          for i, k in enumerate(samples)) / total
                if got.dtypes[name] == "F16":
                    # the fold is exact in fixed point on float32 differences
                    # from the global model, then rounded to F16: within one
                    # unit in the last place of the exact mean
                    ulp = np.abs(np.spacing(avg.astype(np.float16))).astype(np.float64)
                    off = np.abs(got[name].astype(np.float64) - avg)
                    assert np.all(off <= ulp), (name, float((off / ulp).max()))
                else:
                    err = np.abs(got[name] - avg) / np.maximum(1.0, np.abs(avg))
                    worst = max(worst, float(err.max()))
            prev = got
        assert worst <= 1e-6, f"largest relative error {worst:.3e}"
        print(f"       tensor job, 5 rounds, max rel. error {worst:.2e}")
    finally:
        close(job)


def test_secure_tensor_job():
    """A tensor job (F32 + F16 + an I64 buffer kept) under secure
    aggregation, three numpy sites, 3 rounds: each site masks the delta of
    its float tensors (the plain update is never sent); each committed
    float tensor is the weighted average of the trainers' outputs within
    secure aggregation's fixed point (2^-(f+1) per coordinate, as
    secagg_tests.py measures it, plus float32 rounding; F16 tensors then
    rounded to F16), the I64 buffer the initial value."""
    if not have_numpy():
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import numpy as np
    import fedc
    job = Job("tensors-secagg", 3, sizes=[100] * 3, rounds=3, model="tensors",
              extra="[privacy]\nsecure_aggregation = true\n")
    try:
        rng = np.random.default_rng(5)
        init = start_tensor_job(
            job, {"conv.weight": rng.normal(size=(4, 3, 3)).astype(np.float32),
                  "fc.weight": rng.normal(size=(5, 6)).astype(np.float16),
                  "keep": np.array([7, -3], dtype=np.int64)}, "*=keep")
        samples = {1: 120, 2: 240, 3: 175}
        procs = start_tensor_sites(job, samples)
        for k, q in enumerate(procs, 1):
            assert q.wait(timeout=150) == 0, f"client {k} did not finish with exit 0"
        assert job.committed() == 3
        st = job.status()
        assert [r["clients"] for r in st["rounds"]] == [3] * 3, st["rounds"]
        with open(os.path.join(job.dir, "coordinator.log"), errors="replace") as f:
            done = re.findall(r'round=(\d+) msg="secure aggregation done" survivors=3 .*'
                              r'frac_bits=(\d+)', f.read())
        fbits = {int(r): int(b) for r, b in done}
        assert sorted(fbits) == [1, 2, 3], f"secure rounds committed: {done}"
        for k in samples:
            log = client_log(job, k)
            assert log.count('msg="secure round done"') == 3, f"site {k}: secure rounds"
            assert 'msg="update accepted' not in log, f"site {k} sent a plain update"
        ckpt = job.checkpoints()
        prev = fedc.st.load(init)
        total = sum(samples.values())
        worst = 0.0
        for r in range(1, 4):
            bound = 2.0 ** -(fbits[r] + 1)
            outs = [fedc.st.load(os.path.join(job.dir, f"out-{k}", f"round-{r}.safetensors"))
                    for k in samples]
            got = fedc.st.loads(ckpt[r][0])
            for name in prev:
                assert got.dtypes[name] == prev.dtypes[name], (name, got.dtypes[name])
                if name == "keep":
                    assert all(int(o[name][0]) != 7 for o in outs), "the trainer left 'keep'"
                    assert got[name].tolist() == [7, -3], (r, got[name])
                    continue
                avg = sum(samples[k] * outs[i][name].astype(np.float64)
                          for i, k in enumerate(samples)) / total
                off = np.abs(got[name].astype(np.float64) - avg)
                if got.dtypes[name] == "F16":
                    ulp = np.abs(np.spacing(avg.astype(np.float16))).astype(np.float64)
                    assert np.all(off <= ulp + bound), (r, name, float((off / ulp).max()))
                else:
                    err = off - bound - 2e-7 * np.maximum(1.0, np.abs(avg))
                    assert np.all(err <= 0), (r, name, float(err.max()))
                    worst = max(worst, float(off.max()))
            prev = got
        print(f"       secure tensor job, 3 rounds, frac_bits {sorted(set(fbits.values()))}, "
              f"F32 max error {worst:.2e} (bound 2^-(f+1) = {2.0 ** -(min(fbits.values()) + 1):.2e})")
    finally:
        close(job)


if __name__ == "__main__":
    suite = Suite("trainer_tests")
    only = sys.argv[1:]
    for fn in (test_mixed_federation, test_trainer_failures, test_tensor_path_on_a_dense_job,
               test_failure_below_quorum, test_failing_site_backs_off, test_stop_while_training,
               test_tensor_job, test_secure_tensor_job):
        if not only or fn.__name__ in only:
            suite.run(fn)
    suite.finish()
