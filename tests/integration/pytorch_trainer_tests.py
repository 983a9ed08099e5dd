#!/usr/bin/python3
"""pytorch_trainer_tests.py - the PyTorch CNN example's trainer alone
(examples/pytorch-cnn/train.py), as fedc-client would run it, on one site
with a few hundred Fashion-MNIST images: the update has the global model's
tensors (names, shapes, dtypes), num_samples and a finite loss; a second
round from the first round's update trains to a lower loss; the evaluate
action writes predictions for the test images. Skipped when Debian's
python3 has no torch (FEDC_DEPS_EXTRA=python3-torch scripts/install-deps.sh).
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FMNIST, ROOT, Skip, Suite  # noqa: E402

PY = "/usr/bin/python3"
EX = os.path.join(ROOT, "examples/pytorch-cnn")


def run_task(d, action, rnd, model_in, images, labels, limit):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"),
               FEDC_MODEL_IN=model_in, FEDC_UPDATE_OUT=f"{d}/update-{rnd}.safetensors",
               FEDC_METRICS_OUT=f"{d}/metrics-{rnd}.json",
               FEDC_PREDICTIONS_OUT=f"{d}/pred-{rnd}.safetensors",
               FEDC_ROUND=str(rnd), FEDC_SEED="11", FEDC_ACTION=action,
               FEDC_TASK=json.dumps({"action": action, "round": rnd, "seed": "11",
                                     "job": {"model": {"type": "tensors"},
                                             "train": {"epochs": 1, "batch_size": 32,
                                                       "lr": 0.05, "momentum": 0.9}}}))
    r = subprocess.run([PY, f"{EX}/train.py", "--images", images, "--labels", labels,
                        "--limit", str(limit)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-800:]


def test_train_and_evaluate():
    if subprocess.run([PY, "-c", "import torch, numpy"], capture_output=True).returncode:
        raise Skip(f"{PY} has no torch (FEDC_DEPS_EXTRA=python3-torch scripts/install-deps.sh)")
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import fedc
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
        subprocess.run([PY, f"{EX}/make_init.py", f"{d}/init.safetensors"], check=True, env=env,
                       capture_output=True)
        init = fedc.st.load(f"{d}/init.safetensors")
        train = (f"{FMNIST}/train-images-idx3-ubyte.gz", f"{FMNIST}/train-labels-idx1-ubyte.gz")
        losses = []
        model = f"{d}/init.safetensors"
        for rnd in (1, 2):
            run_task(d, "train", rnd, model, *train, 400)
            u = fedc.st.load(f"{d}/update-{rnd}.safetensors")
            assert list(u) == list(init), (list(u), list(init))
            for k in init:
                assert u[k].shape == init[k].shape and u.dtypes[k] == init.dtypes[k], k
                assert (u[k] == u[k]).all(), f"{k} has NaN"
            with open(f"{d}/metrics-{rnd}.json") as f:
                m = json.load(f)
            assert m["num_samples"] == 400 and u.metadata["num_samples"] == "400", m
            losses.append(m["train_loss"])
            model = f"{d}/update-{rnd}.safetensors"
        assert losses[1] < losses[0], f"round 2 did not train to a lower loss: {losses}"
        run_task(d, "evaluate", 3, model, f"{FMNIST}/t10k-images-idx3-ubyte.gz",
                 f"{FMNIST}/t10k-labels-idx1-ubyte.gz", 500)
        p = fedc.st.load(f"{d}/pred-3.safetensors")
        assert p["scores"].shape == (500, 10) and p["labels"].shape == (500,)
        acc = float((p["scores"].argmax(1) == p["labels"]).mean())
        assert acc > 0.2, f"accuracy {acc} after 800 images"
        print(f"       train losses {losses[0]:.3f} -> {losses[1]:.3f}, accuracy on 500 "
              f"test images {acc:.3f}")


if __name__ == "__main__":
    suite = Suite("pytorch_trainer_tests")
    suite.run(test_train_and_evaluate)
    suite.finish()
