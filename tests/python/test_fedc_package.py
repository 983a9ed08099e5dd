#!/usr/bin/python3
"""test_fedc_package.py - unit tests of the Python package python/fedc
(numpy only): its safetensors reader and writer (every dtype, the checks),
a round trip through the C library's reader and writer (libfedc.so through
ctypes), the file check of tests/tools/check_safetensors.py, and the task
helpers (task(), load_model, save_update, save_predictions) against the
environment fedc-client sets, and the schema helpers (read_table,
standardize).

    /usr/bin/python3 tests/python/test_fedc_package.py
"""
import ctypes
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402

import fedc  # noqa: E402
from fedc import safetensors as st  # noqa: E402

BUILD = os.environ.get("FEDC_BUILD", "build")
LIB = os.path.join(BUILD if os.path.isabs(BUILD) else os.path.join(ROOT, BUILD),
                   "dist", "libfedc.so")


def sample_tensors():
    rng = np.random.default_rng(1)
    return {
        "f32": rng.normal(size=(3, 4)).astype(np.float32),
        "f16": rng.normal(size=(5,)).astype(np.float16),
        "f64": rng.normal(size=(2, 2, 2)).astype(np.float64),
        "i64": np.array([0, -3, 2**40], dtype=np.int64),
        "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "i8": np.array([-128, 127], dtype=np.int8),
        "u8": np.array([0, 255], dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


class SafetensorsFormat(unittest.TestCase):
    def test_round_trip_every_dtype(self):
        t = sample_tensors()
        back = st.loads(st.dumps(t, metadata={"note": "x"}))
        self.assertEqual(list(back), list(t))
        for k, v in t.items():
            self.assertEqual(back[k].dtype, v.dtype, k)
            self.assertEqual(back[k].shape, v.shape, k)
            self.assertTrue(np.array_equal(back[k], v), k)
        self.assertEqual(back.metadata["note"], "x")
        self.assertIn("sha256", back.metadata)
        self.assertEqual(back.dtypes["f16"], "F16")
        self.assertEqual(back.dtypes["i64"], "I64")

    def test_bf16(self):
        x = np.array([1.0, -2.5, 3.140625, 1e-3, 65504.0, np.inf], dtype=np.float32)
        back = st.loads(st.dumps({"b": x}, dtypes={"b": "BF16"}))
        self.assertEqual(back.dtypes["b"], "BF16")
        self.assertEqual(back["b"].dtype, np.float32)
        # bfloat16 keeps 8 bits of mantissa: exact for these, close for 1e-3
        self.assertTrue(np.array_equal(back["b"][[0, 1, 2, 5]], x[[0, 1, 2, 5]]))
        self.assertLess(abs(back["b"][3] - 1e-3), 1e-5)
        # round to nearest even: 1 + 2^-8 (a tie) goes down to 1, 1 + 3 * 2^-8 up
        y = np.array([1 + 2**-8, 1 + 3 * 2**-8], dtype=np.float32)
        got = st.loads(st.dumps({"y": y}, dtypes={"y": "BF16"}))["y"]
        self.assertEqual(list(got), [1.0, 1 + 2**-6])
        # written again from what was read: the same bytes
        self.assertEqual(st.dumps(back, dtypes=back.dtypes), st.dumps({"b": x}, dtypes={"b": "BF16"}))

    def test_layout(self):
        blob = st.dumps({"a": np.ones(3, np.float32)}, metadata={"k": "v"})
        n = struct.unpack("<Q", blob[:8])[0]
        self.assertEqual((8 + n) % 8, 0, "data section 8-byte aligned")
        header = json.loads(blob[8:8 + n])
        self.assertEqual(header["a"], {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]})
        self.assertEqual(header["__metadata__"]["sha256"], hashlib.sha256(blob[8 + n:]).hexdigest())

    def test_refusals(self):
        good = st.dumps({"a": np.ones(4, np.float32), "b": np.zeros(2, np.int64)})
        n = struct.unpack("<Q", good[:8])[0]
        header = json.loads(good[8:8 + n])

        def make(h, data=None):
            text = json.dumps(h).encode()
            return struct.pack("<Q", len(text)) + text + (good[8 + n:] if data is None else data)

        bad = dict(header)
        bad["a"] = dict(header["a"], dtype="Q8")
        cases = {
            "short": good[:5],
            "header past the end": struct.pack("<Q", 1 << 20) + b"{}",
            "not json": struct.pack("<Q", 3) + b"{x}",
            "unknown dtype": make(bad),
            "offsets vs shape": make(dict(header, a=dict(header["a"], shape=[5]))),
            "gap": make({k: v for k, v in header.items() if k != "a"}),
            "checksum": good[:-1] + bytes([good[-1] ^ 1]),
            "trailing bytes": make(header, good[8 + n:] + b"\0" * 8),
        }
        for what, blob in cases.items():
            with self.assertRaises(st.FormatError, msg=what):
                st.loads(blob)

    def test_independent_checker(self):
        # tests/tools/check_safetensors.py: fedc's own reading of F32 files
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "m.safetensors")
            st.save(p, {"layers.0.weight": np.ones((3, 2), np.float32),
                        "layers.0.bias": np.arange(3, dtype=np.float32)}, metadata={"round": "2"})
            r = subprocess.run([sys.executable, os.path.join(ROOT, "tests/tools/check_safetensors.py"),
                                p], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)


class StTensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("ndim", ctypes.c_int32),
                ("shape", ctypes.c_int64 * 4), ("data", ctypes.POINTER(ctypes.c_float))]


class StMeta(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("value", ctypes.c_char_p)]


class CLibraryRoundTrip(unittest.TestCase):
    """Python -> libfedc -> Python through <fedc/tensors.h> (F32: what the
    library reads and writes today)."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(LIB):
            raise unittest.SkipTest(f"{LIB} is not built (make lib)")
        cls.lib = ctypes.CDLL(LIB)
        cls.lib.fedc_st_read_file.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        cls.lib.fedc_st_count.argtypes = [ctypes.c_void_p]
        cls.lib.fedc_st_count.restype = ctypes.c_size_t
        cls.lib.fedc_st_get.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(StTensor)]
        cls.lib.fedc_st_meta_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        cls.lib.fedc_st_meta_get.restype = ctypes.c_char_p
        cls.lib.fedc_st_free.argtypes = [ctypes.c_void_p]
        cls.lib.fedc_st_write_file.argtypes = [ctypes.c_char_p, ctypes.POINTER(StTensor),
                                               ctypes.c_size_t, ctypes.POINTER(StMeta),
                                               ctypes.c_size_t]
        cls.lib.fedc_error_msg.restype = ctypes.c_char_p

    def test_python_to_c_to_python(self):
        rng = np.random.default_rng(5)
        t = {"layers.0.weight": rng.normal(size=(4, 6)).astype(np.float32),
             "layers.0.bias": rng.normal(size=(4,)).astype(np.float32),
             "s": np.array(2.5, dtype=np.float32)}
        with tempfile.TemporaryDirectory() as d:
            a, b = os.path.join(d, "a.safetensors"), os.path.join(d, "b.safetensors")
            st.save(a, t, metadata={"num_samples": "12"})
            f = ctypes.c_void_p()
            rc = self.lib.fedc_st_read_file(a.encode(), ctypes.byref(f))
            self.assertEqual(rc, 0, self.lib.fedc_error_msg())
            n = self.lib.fedc_st_count(f)
            self.assertEqual(n, 3)
            self.assertEqual(self.lib.fedc_st_meta_get(f, b"num_samples"), b"12")
            views = (StTensor * n)()
            for i in range(n):
                self.lib.fedc_st_get(f, i, ctypes.byref(views[i]))
                v = views[i]
                name = v.name.decode()
                shape = tuple(v.shape[k] for k in range(v.ndim))
                self.assertEqual(shape, t[name].shape, name)
                got = np.ctypeslib.as_array(v.data, shape=(max(1, int(np.prod(shape))),))
                self.assertTrue(np.array_equal(got.reshape(shape), t[name]), name)
            meta = (StMeta * 1)(StMeta(b"round", b"4"))
            rc = self.lib.fedc_st_write_file(b.encode(), views, n, meta, 1)
            self.assertEqual(rc, 0, self.lib.fedc_error_msg())
            self.lib.fedc_st_free(f)
            back = st.load(b)
            self.assertEqual(back.metadata["round"], "4")
            for k, v in t.items():
                self.assertTrue(np.array_equal(back[k], v), k)
                self.assertEqual(back.dtypes[k], "F32")


class TaskHelpers(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        d = self.dir.name
        self.env = {"FEDC_MODEL_IN": os.path.join(d, "model.safetensors"),
                    "FEDC_UPDATE_OUT": os.path.join(d, "update.safetensors"),
                    "FEDC_METRICS_OUT": os.path.join(d, "metrics.json"),
                    "FEDC_PREDICTIONS_OUT": os.path.join(d, "pred.safetensors"),
                    "FEDC_ROUND": "3", "FEDC_SEED": "99",
                    "FEDC_TASK": json.dumps({"action": "train", "round": 3, "seed": "99",
                                             "job": {"id": "j", "train": {"lr": 0.1, "epochs": 2},
                                                     "model": {"type": "softmax"}}})}
        self.saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)

    def tearDown(self):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self.dir.cleanup()

    def test_task(self):
        t = fedc.task()
        self.assertEqual((t.action, t.round, t.seed), ("train", 3, 99))
        self.assertEqual(t.hparams["lr"], 0.1)
        self.assertEqual(t.model["type"], "softmax")
        self.assertEqual(t.job["id"], "j")
        with self.assertRaises(RuntimeError):
            fedc.task(env={})

    def test_update_keeps_the_global_dtypes(self):
        st.save(self.env["FEDC_MODEL_IN"], {"w": np.ones((2, 2), np.float16),
                                            "n": np.array(1, np.int64),
                                            "b": np.ones(3, np.float32)},
                dtypes={"b": "BF16"})
        w = fedc.load_model()
        self.assertEqual(w.dtypes, {"w": "F16", "n": "I64", "b": "BF16"})
        w = {k: (v.astype(np.float32) * 2 if k != "n" else v + 1) for k, v in w.items()}
        fedc.save_update(w, num_samples=40, train_loss=0.25, metrics={"train_accuracy": 0.5})
        u = st.load(self.env["FEDC_UPDATE_OUT"])
        self.assertEqual(u.dtypes, {"w": "F16", "n": "I64", "b": "BF16"})
        self.assertEqual(u.metadata["num_samples"], "40")
        self.assertEqual(float(u.metadata["train_loss"]), 0.25)
        self.assertTrue(np.array_equal(u["w"], np.full((2, 2), 2, np.float16)))
        self.assertEqual(int(u["n"]), 2)
        with open(self.env["FEDC_METRICS_OUT"]) as f:
            m = json.load(f)
        self.assertEqual(m, {"num_samples": 40, "train_loss": 0.25, "train_accuracy": 0.5})

    def test_update_refusals(self):
        w = {"a": np.ones(2, np.float32)}
        for n, loss in ((0, 1.0), (2.5, 1.0), (3, float("nan")), (3, float("inf"))):
            with self.assertRaises((ValueError, TypeError), msg=(n, loss)):
                fedc.save_update(w, num_samples=n, train_loss=loss)
        self.assertFalse(os.path.exists(self.env["FEDC_UPDATE_OUT"]))

    def test_predictions(self):
        scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], np.float32)
        fedc.save_predictions(scores, np.array([1, 0, 0]), metrics={"test_loss": 0.4})
        p = st.load(self.env["FEDC_PREDICTIONS_OUT"])
        self.assertEqual(p["scores"].shape, (3, 2))
        self.assertEqual(list(p["labels"]), [1, 0, 0])
        self.assertEqual(p.dtypes["labels"], "I64")
        with open(self.env["FEDC_METRICS_OUT"]) as f:
            self.assertEqual(json.load(f), {"num_samples": 3, "test_loss": 0.4})
        with self.assertRaises(ValueError):
            fedc.save_predictions(scores, np.array([1, 0]))


class ScaffoldHelpers(unittest.TestCase):
    """A SCAFFOLD round: task.correction() as numpy and torch,
    apply_correction on numpy gradients and a torch module's, and the step
    count save_update requires."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        d = self.dir.name
        self.corr_path = os.path.join(d, "correction.safetensors")
        self.env = {"FEDC_MODEL_IN": os.path.join(d, "model.safetensors"),
                    "FEDC_UPDATE_OUT": os.path.join(d, "update.safetensors"),
                    "FEDC_METRICS_OUT": os.path.join(d, "metrics.json"),
                    "FEDC_CORRECTION_IN": self.corr_path,
                    "FEDC_TASK": json.dumps({"action": "train", "round": 2, "seed": "5",
                                             "job": {"train": {"lr": 0.1}},
                                             "correction": self.corr_path})}
        self.saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        rng = np.random.default_rng(3)
        self.c = {"layers.0.weight": rng.normal(size=(3, 4)).astype(np.float32),
                  "layers.0.bias": rng.normal(size=(3,)).astype(np.float32)}
        st.save(self.corr_path, self.c, metadata={"round": "2", "kind": "scaffold_correction"})

    def tearDown(self):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self.dir.cleanup()

    def test_correction_numpy(self):
        t = fedc.task()
        self.assertEqual(t.correction_in, self.corr_path)
        c = t.correction()
        self.assertEqual(list(c), list(self.c))
        for k, v in self.c.items():
            self.assertTrue(np.array_equal(c[k], v), k)
        # the path in FEDC_TASK alone is enough
        env = dict(self.env)
        del env["FEDC_CORRECTION_IN"]
        self.assertEqual(fedc.task(env=env).correction_in, self.corr_path)
        # no correction: not a SCAFFOLD round
        env["FEDC_TASK"] = json.dumps({"action": "train", "round": 2, "job": {}})
        self.assertIsNone(fedc.task(env=env).correction())
        with self.assertRaises(ValueError):
            t.correction("jax")

    def test_apply_correction_numpy(self):
        g = {k: np.ones(v.shape, np.float64) for k, v in self.c.items()}
        out = fedc.apply_correction(g, fedc.task().correction())
        for k in g:
            self.assertEqual(out[k].dtype, np.float64)
            self.assertTrue(np.allclose(out[k], 1.0 + self.c[k].astype(np.float64)), k)
            self.assertTrue(np.array_equal(g[k], np.ones(self.c[k].shape)), "g changed")
        self.assertIs(fedc.apply_correction(g, None), g)
        with self.assertRaises(ValueError):
            fedc.apply_correction({"other": np.ones(3)}, self.c)
        with self.assertRaises(ValueError):
            fedc.apply_correction({"layers.0.bias": np.ones(4)}, self.c)
        # one corrected SGD step against y - lr (g + c)
        y = {k: np.zeros(v.shape) for k, v in self.c.items()}
        step = {k: y[k] - 0.1 * v for k, v in fedc.apply_correction(g, self.c).items()}
        for k in y:
            self.assertTrue(np.allclose(step[k], -0.1 * (1.0 + self.c[k])), k)

    def test_apply_correction_torch(self):
        try:
            import torch
        except ImportError:
            raise unittest.SkipTest("no torch under this interpreter")
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(4, 3))
        lr = 0.1
        x = torch.randn(8, 4)
        y = torch.randint(0, 3, (8,))
        start = {k: v.clone() for k, v in m.state_dict().items()}
        opt = torch.optim.SGD(m.parameters(), lr=lr)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        grads = {k: p.grad.clone() for k, p in m.named_parameters()}
        corr = fedc.task().correction("torch")
        self.assertEqual(set(corr), set(self.c))
        # a module whose parameter names are the model's
        m2 = torch.nn.Module()
        m2.layers = torch.nn.Sequential(torch.nn.Linear(4, 3))
        m2.layers.load_state_dict(start)
        opt = torch.optim.SGD(m2.parameters(), lr=lr)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m2.layers(x), y).backward()
        corr = fedc.task().correction("torch", module=m2)
        self.assertEqual(corr["layers.0.weight"].dtype, torch.float32)
        fedc.apply_correction(m2, corr)
        opt.step()
        for k in ("weight", "bias"):
            c = torch.from_numpy(self.c["layers.0." + k])
            want = start["0." + k] - lr * (grads["0." + k] + c)
            got = dict(m2.named_parameters())["layers.0." + k].detach()
            self.assertTrue(torch.allclose(got, want, atol=1e-6), k)
        with self.assertRaises(ValueError):
            fedc.apply_correction(m, corr)  # names that are not the model's

    def test_save_update_needs_steps(self):
        w = {k: np.zeros(v.shape, np.float32) for k, v in self.c.items()}
        with self.assertRaises(ValueError):
            fedc.save_update(w, num_samples=10, train_loss=0.5)
        with self.assertRaises(ValueError):
            fedc.save_update(w, num_samples=10, train_loss=0.5, steps=0)
        fedc.save_update(w, num_samples=10, train_loss=0.5, steps=7)
        self.assertEqual(st.load(self.env["FEDC_UPDATE_OUT"]).metadata["steps"], "7")
        with open(self.env["FEDC_METRICS_OUT"]) as f:
            self.assertEqual(json.load(f)["steps"], 7)


class Tabular(unittest.TestCase):
    """read_table and standardize: a job's schema and statistics as the
    built-in trainer uses them (columns by name, one-hot categories in
    vocabulary order, NaN for a missing value, then (x - mean) / std with
    a missing value at 0)."""

    def task(self, stats=True):
        job = {"schema": {"features": ["a", "c", "b"], "label": "y", "exclude": ["id"],
                          "categorical": {"c": ["red", "blue"]}, "missing": "mean"}}
        if stats:
            job["stats"] = {"mean": [1.0, 0.5, 0.5, 10.0], "std": [2.0, 0.5, 0.5, 1.0]}
        return fedc.Task(env={"FEDC_TASK": json.dumps({"action": "train", "round": 1,
                                                       "seed": "1", "job": job})})

    def test_read_and_standardize(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.csv")
            with open(path, "w") as f:
                f.write("y,b,id,c,a\n1,11,7,red,3\n0,9,8,blue,NA\n1,,9,,-1\n")
            t = self.task()
            x, y = fedc.read_table(path, t)
            nan = float("nan")
            np.testing.assert_array_equal(x, [[3, 1, 0, 11], [nan, 0, 1, 9], [-1, nan, nan, nan]])
            np.testing.assert_array_equal(y, [1, 0, 1])
            z = fedc.standardize(x, t)
            np.testing.assert_allclose(z, [[1, 1, -1, 1], [0, -1, 1, -1], [-1, 0, 0, 0]])
            self.assertEqual(t.schema["label"], "y")
            self.assertEqual(t.stats["std"][0], 2.0)
            with self.assertRaises(ValueError):  # no statistics yet
                fedc.standardize(x, self.task(stats=False))
            with self.assertRaises(ValueError):  # another width
                fedc.standardize(x[:, :3], t)
            with open(path, "w") as f:
                f.write("y,b,id,c,a\n1,11,7,purple,3\n")
            with self.assertRaises(ValueError):  # not in the vocabulary
                fedc.read_table(path, t)


if __name__ == "__main__":
    # unittest's run, then the summary line scripts/run-tests.sh reads
    res = unittest.main(verbosity=2, exit=False).result
    bad = len(res.failures) + len(res.errors)
    skipped = len(res.skipped)
    for case, why in res.skipped:
        print(f"  skip {case.id()}: {why}")
    print(f"test_fedc_package: {res.testsRun - bad - skipped} passed, {bad} failed, "
          f"{skipped} skipped", flush=True)
    sys.exit(1 if bad else 77 if skipped == res.testsRun else 0)
