"""tensor_job_tests.py - a tensor job ([model] type = tensors) on a real
coordinator over mutual TLS on loopback (tests/integration/harness.py),
its three sites played by this script with numpy:

- the job object of POST /v1/join lists the init file's tensors; every
  model is served with each tensor in its own dtype;
- 5 rounds of updates with F32, F16 and BF16 tensors, an I64 buffer taking
  the maximum and an I32 one kept: each committed model is the
  sample-weighted average recomputed here in float64, rounded to the
  tensor's dtype (|error| / max(1, |mean|) <= 1e-6 beyond that rounding,
  as tests/integration/coordinator_tests.py measures FedAvg), the I64
  buffer the maximum of the updates, the I32 one the initial value;
- an update with a wrong name, shape or dtype, or a NaN, is refused
  (bad_shape, bad_dtype, non_finite) with the tensor's name in the message;
- a coordinator killed with SIGKILL after round 2 and restarted ends with
  models bit-identical to the uninterrupted run's;
- the built-in client (no [trainer] command) refuses a tensor job at
  once, exit code 2, saying so;
- DP-FedAvg noises only the float part (dtypes kept, integers untouched)
  and the ledger grows each round;
- start refuses a missing or invalid init file, an F64 tensor, a bad
  integer_rule, [data] test, and max rules under secure aggregation.
Run under /usr/bin/python3 (Debian's, with numpy).
"""
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Job, Skip, Suite  # noqa: E402

try:
    import numpy as np
except ImportError:  # reported as skipped, never passed
    np = None

ROUNDS = 5
N = 3
SAMPLES = {1: 37, 2: 50, 3: 41}  # none over [strategy] max_client_share


# ---- safetensors with any dtype, by hand ---------------------------------------
def bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (NaN not expected)."""
    b = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = b + 0x7FFF + ((b >> 16) & 1)
    return (b >> 16).astype(np.uint16)


def bf16_value(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


DT = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "F64": np.float64}


def encode(tensors, meta):
    """tensors: list of (name, dtype name, numpy array; BF16 as uint16 bits)."""
    header, off, data = {}, 0, b""
    for name, dt, arr in tensors:
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    m = dict(meta)
    m["sha256"] = hashlib.sha256(data).hexdigest()
    header["__metadata__"] = m
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def decode(blob):
    """name -> (dtype name, numpy array; BF16 as uint16 bits), metadata."""
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        dt = np.uint16 if t["dtype"] == "BF16" else DT[t["dtype"]]
        out[name] = (t["dtype"], np.frombuffer(data[a:b], dtype=np.dtype(dt).newbyteorder("<"))
                     .reshape(t["shape"]).copy())
    return out, meta


def as_f64(dt, arr):
    return bf16_value(arr).astype(np.float64) if dt == "BF16" else arr.astype(np.float64)


ORDER = ["conv.weight", "head.weight", "emb", "bn.num_batches_tracked", "steps"]


def initial():
    rng = np.random.default_rng(11)
    return [("conv.weight", "F32", rng.normal(0, 1, (4, 3, 2, 2)).astype(np.float32)),
            ("head.weight", "F16", rng.normal(0, 3, (5, 7)).astype(np.float16)),
            ("emb", "BF16", bf16_bits(rng.normal(0, 50, (6,)).astype(np.float32))),
            ("bn.num_batches_tracked", "I64", np.array(1 << 40, dtype=np.int64)),
            ("steps", "I32", np.array([3, -4], dtype=np.int32))]


def update_of(model, k, rnd):
    """Site k's update in round rnd: a deterministic function of the
    global model, k and rnd (so two runs from the same models agree)."""
    rng = np.random.default_rng(1000 * k + rnd)
    out = []
    for name in ORDER:
        dt, g = model[name]
        if dt == "F32":
            v = (g + rng.normal(0, 0.5, g.shape)).astype(np.float32)
        elif dt == "F16":
            v = (g.astype(np.float32) + rng.normal(0, 0.5, g.shape)).astype(np.float16)
        elif dt == "BF16":
            v = bf16_bits(bf16_value(g) + rng.normal(0, 5, g.shape).astype(np.float32))
        elif name == "steps":
            v = (g + rng.integers(1, 100, g.shape)).astype(np.int32)
        else:
            v = (g + 10 * k + rnd).astype(np.int64)
        out.append((name, dt, v))
    return out


# ---- the job ----------------------------------------------------------------------
def tensor_job(name, rule="*.num_batches_tracked = max", extra_model="", init=True, **cfg):
    job = Job(name, N, sizes=[10] * N, rounds=ROUNDS, round_timeout_s=60, poll_s=1, **cfg)
    path = os.path.join(job.dir, "init.safetensors")
    if init:
        with open(path, "wb") as f:
            f.write(encode(initial(), {"note": "initial"}))
    with open(job.coord_ini) as f:
        text = f.read()
    text = text.replace("type = softmax\n", "type = tensors\n").replace("inputs = 784\n", "") \
               .replace("classes = 10\n", "")
    text = text.replace("[model]\n", f"[model]\ninit = {path}\ninteger_rule = {rule}\n{extra_model}", 1)
    with open(job.coord_ini, "w") as f:
        f.write(text)
    return job, path


def join_all(job):
    for k in range(1, N + 1):
        status, body = job.request("POST", "/v1/join", b"{}", cert=f"client-{k}")
        assert status == 200, body
    return json.loads(body)


def wait_train(job, rnd):
    """Poll as every site until each is told to train round rnd."""
    waiting = set(range(1, N + 1))

    def poll():
        for k in list(waiting):
            status, body = job.request("GET", "/v1/task?wait=0", cert=f"client-{k}")
            if status == 200:
                t = json.loads(body)
                if t.get("action") == "train" and t.get("round") == rnd:
                    waiting.discard(k)
        return not waiting
    job.wait_for(poll, 30, f"a train task of round {rnd} for every site")


def post(job, k, body):
    status, resp = job.request("POST", "/v1/update", body, cert=f"client-{k}")
    return status, json.loads(resp)


def play_round(job, rnd, check=None):
    """One round as three sites; returns the start model and the updates."""
    wait_train(job, rnd)
    status, blob = job.request("GET", f"/v1/model/{rnd}")
    assert status == 200
    model, _ = decode(blob)
    assert [model[n][0] for n in ORDER] == ["F32", "F16", "BF16", "I64", "I32"], \
        "the served model lost a dtype"
    if check:
        check(model)
    ups = {}
    for k in range(1, N + 1):
        ups[k] = update_of(model, k, rnd)
        meta = {"round": str(rnd), "num_samples": str(SAMPLES[k]), "train_loss": "0.25"}
        status, resp = post(job, k, encode(ups[k], meta))
        assert status == 200 and resp["accepted"], resp
    job.wait_for(lambda: job.committed() >= rnd, 30, f"round {rnd} to commit")
    return model, ups


def expected(model, ups):
    """The weighted average in float64 per float tensor; the rules for ints."""
    total = sum(SAMPLES.values())
    exp = {}
    for i, name in enumerate(ORDER):
        dt = model[name][0]
        if dt in ("F32", "F16", "BF16"):
            exp[name] = sum(as_f64(dt, ups[k][i][2]) * SAMPLES[k] for k in ups) / total
        elif name == "steps":
            exp[name] = model[name][1]
        else:
            exp[name] = max(ups[k][i][2] for k in ups)
    return exp


def check_committed(after, exp):
    """Each float tensor against the exact mean as the other fedc tests
    measure it, |got - mean| / max(1, |mean|) <= 1e-6, beyond the rounding
    to the tensor's dtype (half a unit of F16 or BF16); integers exactly.
    Returns the largest F32 error."""
    worst = 0.0
    for name in ORDER:
        dt, got = after[name]
        if dt in ("F32", "F16", "BF16"):
            g, e = as_f64(dt, got), exp[name]
            rounding = 0.0 if dt == "F32" else \
                np.ldexp(1.0, np.frexp(np.abs(e))[1] - {"F16": 11, "BF16": 8}[dt] - 1)
            err = (np.abs(g - e) - rounding) / np.maximum(1.0, np.abs(e))
            assert np.all(err <= 1e-6), f"{name}: error {float(np.max(err)):.3e} beyond rounding to {dt}"
            if dt == "F32":
                worst = max(worst, float(np.max(err)))
        else:
            assert np.array_equal(got, exp[name]), f"{name}: {got} != {exp[name]}"
    return worst


def run_job(job, kill_after=None):
    """Play every round (with SIGKILL and a restart after round
    kill_after); returns the committed checkpoints' data sha256 by round."""
    job.allow_all()
    job.start_coordinator()
    join = join_all(job)
    worst = 0.0
    for rnd in range(1, ROUNDS + 1):
        start, ups = play_round(job, rnd)
        status, blob = job.request("GET", f"/v1/model/{rnd + 1}") if rnd < ROUNDS else \
            (200, job.checkpoints()[rnd][0])
        assert status == 200
        after, _ = decode(blob)
        worst = max(worst, check_committed(after, expected(start, ups)))
        if rnd == kill_after:
            job.coordinator.send_signal(signal.SIGKILL)
            job.coordinator.wait()
            job.start_coordinator()
            join_all(job)
    # the data section's sha256 (the file's differs: its metadata names the job)
    return join, {r: decode(blob)[1]["sha256"] for r, (blob, _) in job.checkpoints().items()}, worst


def need_numpy():
    if np is None:
        raise Skip("numpy is not installed for this interpreter (run under /usr/bin/python3)")


def test_tensor_job_and_resume():
    need_numpy()
    job, _ = tensor_job("tensors")
    try:
        join, shas, worst = run_job(job)
        m = join["job"]["model"]
        assert m["type"] == "tensors", m
        assert [(t["name"], t["dtype"], t["shape"]) for t in m["tensors"]] == \
            [("conv.weight", "F32", [4, 3, 2, 2]), ("head.weight", "F16", [5, 7]),
             ("emb", "BF16", [6]), ("bn.num_batches_tracked", "I64", []),
             ("steps", "I32", [2])], m
        print(f"       5 rounds: F32 max relative error {worst:.2e}; F16/BF16 within half a unit")
    finally:
        job.close()
    job2, _ = tensor_job("tensors-kill")
    try:
        _, shas2, _ = run_job(job2, kill_after=2)
        assert shas2 == shas, "the resumed job's models differ from the uninterrupted run's"
        print(f"       killed after round 2 and resumed: {len(shas2)} checkpoints bit-identical")
    finally:
        job2.close()


def test_refusals_name_the_tensor():
    need_numpy()
    job, _ = tensor_job("tensors-refuse")
    try:
        job.allow_all()
        job.start_coordinator()
        join_all(job)
        wait_train(job, 1)
        status, blob = job.request("GET", "/v1/model/1")
        model, _ = decode(blob)
        good = update_of(model, 1, 1)
        meta = {"round": "1", "num_samples": "5", "train_loss": "0.5"}

        def variant(i, name=None, dt=None, arr=None):
            t = list(good)
            n0, d0, a0 = t[i]
            t[i] = (name or n0, dt or d0, a0 if arr is None else arr)
            return encode(t, meta)
        cases = [
            ("wrong name", variant(1, name="head.weights"), "bad_shape", "'head.weight'"),
            ("wrong shape", variant(0, arr=good[0][2].reshape(4, 3, 4)), "bad_shape", "'conv.weight'"),
            ("wrong dtype", variant(1, dt="F32", arr=good[1][2].astype(np.float32)), "bad_dtype",
             "'head.weight' is F32"),
            ("int as float", variant(3, dt="F64", arr=np.array(1.0)), "bad_dtype",
             "'bn.num_batches_tracked' is F64"),
            ("NaN in F16", variant(1, arr=np.where(np.arange(35).reshape(5, 7) == 9, np.float16("nan"),
                                                   good[1][2]).astype(np.float16)),
             "non_finite", "'head.weight' element 9"),
            ("inf in BF16", variant(2, arr=np.array([0x7F80] * 6, dtype=np.uint16)), "non_finite", "'emb'"),
        ]
        for what, body, code, needle in cases:
            status, err = post(job, 1, body)
            assert status == 400 and err.get("error") == code and needle in err.get("message", ""), \
                (what, status, err)
        # the good update is still accepted after all that
        status, resp = post(job, 1, encode(good, meta))
        assert status == 200 and resp["accepted"], resp
    finally:
        job.close()


def start_fails(job, needle):
    p = subprocess.run([os.path.join(BIN, "fedc-coordinator"), "--config", job.coord_ini],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and needle in p.stderr, (p.returncode, p.stderr)


def test_start_refusals():
    need_numpy()
    job, path = tensor_job("tensors-start", init=False)
    try:
        start_fails(job, "cannot open")
        with open(path, "wb") as f:
            f.write(b"not a safetensors file")
        start_fails(job, "not a valid safetensors file")
        with open(path, "wb") as f:
            f.write(encode([("w", "F32", np.zeros(3, np.float32)), ("w64", "F64", np.zeros(2))], {}))
        start_fails(job, "'w64' is F64")
        with open(path, "wb") as f:
            f.write(encode([("n", "I64", np.zeros(2, np.int64))], {}))
        start_fails(job, "something to average")
        with open(path, "wb") as f:
            f.write(encode([("w", "F32", np.array([1.0, np.inf], np.float32))], {}))
        start_fails(job, "'w' element 1")
        with open(path, "wb") as f:
            f.write(encode(initial(), {}))
        base = open(job.coord_ini).read()
        for text, needle in [
                (base.replace("= max\n", "= sum\n"), "integer_rule"),
                (base.replace("test =\n", "test = /x.idx\n"), "[data] test"),
                (base.replace("[model]\n", "[model]\ninputs = 5\n"), "[model] inputs"),
                (base.replace("[job]\n", "[privacy]\nsecure_aggregation = true\n[job]\n"), "secure aggregation")]:
            with open(job.coord_ini, "w") as f:
                f.write(text)
            start_fails(job, needle)
    finally:
        job.close()


def test_builtin_client_refuses():
    need_numpy()
    job, _ = tensor_job("tensors-builtin")
    try:
        job.allow_all()
        job.start_coordinator()
        p = job.start_client(1)
        rc = p.wait(timeout=60)
        with open(os.path.join(job.dir, "client-1.log")) as f:
            log = f.read()
        assert rc == 2 and "set [trainer] command" in log, (rc, log[-500:])
    finally:
        job.close()


def test_dp_on_a_tensor_job():
    """DP-FedAvg on a tensor job: the float part is clipped and noised, the
    F16/BF16 tensors stay in their dtype (play_round checks every served
    model), the integer tensors take no noise (the kept one stays at its
    initial value, the max one is the updates' maximum), and the ledger
    grows each round."""
    need_numpy()
    job, _ = tensor_job("tensors-dp")
    try:
        with open(job.coord_ini) as f:
            text = f.read()
        with open(job.coord_ini, "w") as f:
            f.write(text + "[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\n")
        job.allow_all()
        job.start_coordinator()
        join_all(job)
        noise = []
        for rnd in (1, 2):
            start, ups = play_round(job, rnd)
            status, blob = job.request("GET", f"/v1/model/{rnd + 1}")
            assert status == 200
            after, _ = decode(blob)
            exp = expected(start, ups)
            assert np.array_equal(after["steps"][1], start["steps"][1]), "a kept int moved"
            assert np.array_equal(after["bn.num_batches_tracked"][1], exp["bn.num_batches_tracked"])
            for name in ("conv.weight", "head.weight", "emb"):
                dt, got = after[name]
                g = as_f64(dt, got)
                assert np.all(np.isfinite(g)), name
                noise.append(float(np.max(np.abs(g - exp[name]))))
        assert min(noise) > 1e-3, f"no noise on the float tensors: {noise}"
        eps = [r["epsilon"] for r in job.status()["rounds"]]
        assert len(eps) == 2 and 0 < eps[0] < eps[1], eps
        print(f"       2 DP rounds: epsilon {eps[0]:.3f}, {eps[1]:.3f}; ints untouched; "
              f"F16/BF16 kept")
    finally:
        job.close()


def main():
    s = Suite("tensor jobs")
    s.run(test_builtin_client_refuses)
    s.run(test_tensor_job_and_resume)
    s.run(test_refusals_name_the_tensor)
    s.run(test_start_refusals)
    s.run(test_dp_on_a_tensor_job)
    s.finish()


if __name__ == "__main__":
    main()
