"""fedc - write an external trainer for fedc-client ([trainer] command).

fedc-client runs the site's trainer once per task with this environment
(docs/trainers.md):

  FEDC_MODEL_IN         the round's global model (safetensors)
  FEDC_UPDATE_OUT       where the trainer writes its update (same tensor
                        names, shapes and dtypes; metadata num_samples)
  FEDC_METRICS_OUT      where it writes {"num_samples": N, "train_loss": x, ...}
  FEDC_PREDICTIONS_OUT  evaluate only: "scores" [N] or [N, C], "labels" [N]
  FEDC_ROUND, FEDC_SEED the round and a seed for its randomness
  FEDC_TASK             {"action": "train"|"evaluate", "round": r,
                         "seed": "...", "job": {...the job object...}}

    import fedc
    t = fedc.task()
    w = fedc.load_model()                    # name -> numpy array
    ... train ...
    fedc.save_update(w, num_samples=n, train_loss=loss)

With PyTorch: fedc.load_state_dict(module) before training,
fedc.save_update(module.state_dict(), ...) after. The update is written in
the global model's dtypes (an F16 tensor stays F16) unless told otherwise.
"""
import json
import math
import os

import numpy as np

from . import safetensors as st
from .safetensors import FormatError, Tensors  # noqa: F401
from .tabular import read_table, standardize  # noqa: F401

__all__ = ["Task", "task", "load_model", "load_state_dict", "to_numpy", "save_update",
           "save_metrics", "save_predictions", "st", "FormatError", "Tensors", "read_table",
           "standardize"]
__version__ = "0.1.0"

# the dtypes of the last model loaded: an update is written in them
_last_dtypes = {}


class Task:
    """One task of fedc-client: what to do and where the files are."""

    def __init__(self, env=None):
        env = os.environ if env is None else env
        raw = env.get("FEDC_TASK")
        if raw is None and env.get("FEDC_TASK_FILE"):
            with open(env["FEDC_TASK_FILE"]) as f:
                raw = f.read()
        if raw is None:
            raise RuntimeError("FEDC_TASK is not set: run this through fedc-client's "
                               "[trainer] command (docs/trainers.md)")
        d = json.loads(raw)
        self.raw = d
        self.action = d.get("action", "train")
        self.round = int(d.get("round", env.get("FEDC_ROUND", 0)))
        self.seed = int(d.get("seed", env.get("FEDC_SEED", 0)))
        self.job = d.get("job", {})
        self.model_in = env.get("FEDC_MODEL_IN")
        self.update_out = env.get("FEDC_UPDATE_OUT")
        self.metrics_out = env.get("FEDC_METRICS_OUT")
        self.predictions_out = env.get("FEDC_PREDICTIONS_OUT")

    @property
    def hparams(self):
        """The job's training hyper-parameters (epochs, batch_size, lr,
        momentum, prox_mu, ...): the job object's "train" member."""
        return dict(self.job.get("train", {}))

    @property
    def schema(self):
        """The job's schema (a dict), or None for a job without one."""
        return self.job.get("schema")

    @property
    def stats(self):
        """The federation's statistics ("mean", "std", "count", ... per
        model input), or None before the statistics phase is over."""
        return self.job.get("stats")

    @property
    def model(self):
        """The job's model description (type, tensors or layout)."""
        return dict(self.job.get("model", {}))

    def __repr__(self):
        return f"Task(action={self.action!r}, round={self.round}, seed={self.seed})"


def task(env=None):
    """The current task, from the environment fedc-client sets."""
    return Task(env)


def _path(given, var):
    p = given or os.environ.get(var)
    if not p:
        raise RuntimeError(f"{var} is not set and no path was given")
    return p


def load_model(path=None):
    """The global model (FEDC_MODEL_IN, or path): name -> numpy array, in
    the file's order, with .dtypes and .metadata (BF16 read as float32)."""
    t = st.load(_path(path, "FEDC_MODEL_IN"))
    _last_dtypes.clear()
    _last_dtypes.update(t.dtypes)
    return t


def load_state_dict(module, path=None, strict=True):
    """Load the global model into a torch.nn.Module: each tensor as the
    module's own dtype and device. Returns the module."""
    import torch
    w = load_model(path)
    own = module.state_dict()
    sd = {}
    for k, v in w.items():
        t = torch.from_numpy(np.ascontiguousarray(v))
        if k in own:
            t = t.to(dtype=own[k].dtype, device=own[k].device)
        sd[k] = t
    module.load_state_dict(sd, strict=strict)
    return module


def to_numpy(tensors):
    """name -> numpy array from a dict of numpy arrays or torch tensors (a
    state dict); torch bfloat16 becomes float32 (written back as BF16)."""
    out = {}
    for k, v in tensors.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu()
            if str(v.dtype) == "torch.bfloat16":
                v = v.float()
            v = v.numpy()
        out[k] = np.asarray(v)
    return out


def _finite_number(x, what):
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} must be a number, not {type(x).__name__}")
    if not math.isfinite(float(x)):
        raise ValueError(f"{what} must be finite, not {x}")
    return float(x)


def save_metrics(metrics, path=None):
    """Write the metrics JSON (FEDC_METRICS_OUT, or path): numbers only."""
    clean = {}
    for k, v in metrics.items():
        clean[str(k)] = (int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                         else _finite_number(v, k))
    p = _path(path, "FEDC_METRICS_OUT")
    tmp = f"{p}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(clean, f)
    os.replace(tmp, p)


def save_update(tensors, num_samples, train_loss, path=None, metrics=None, dtypes=None,
                metrics_path=None):
    """Write the update (FEDC_UPDATE_OUT, or path) with metadata
    num_samples and train_loss, and the metrics JSON beside it
    (FEDC_METRICS_OUT, or metrics_path) with those two and any extra
    numbers in metrics. Each tensor is written in the dtype the global
    model had (load_model remembers them) unless dtypes says otherwise.
    num_samples must be an integer >= 1 and train_loss finite: fedc-client
    refuses anything else."""
    n = int(num_samples)
    if n != num_samples or n < 1:
        raise ValueError(f"num_samples must be an integer >= 1, not {num_samples}")
    loss = _finite_number(train_loss, "train_loss")
    arrays = to_numpy(tensors)
    want = dict(_last_dtypes)
    want.update(dtypes or {})
    want = {k: v for k, v in want.items() if k in arrays}
    st.save(_path(path, "FEDC_UPDATE_OUT"), arrays,
            metadata={"num_samples": str(n), "train_loss": repr(loss)}, dtypes=want)
    m = {"num_samples": n, "train_loss": loss}
    m.update(metrics or {})
    if metrics_path or os.environ.get("FEDC_METRICS_OUT"):
        save_metrics(m, metrics_path)


def save_predictions(scores, labels, path=None, metrics=None, metrics_path=None):
    """For an evaluate task: "scores" ([N] probabilities of class 1, or
    [N, C] scores) and "labels" ([N]) to FEDC_PREDICTIONS_OUT (or path);
    fedc-client computes the evaluation report from them. metrics: extra
    numbers (num_samples, test_loss, ...) for FEDC_METRICS_OUT."""
    s = np.asarray(to_numpy({"s": scores})["s"], dtype=np.float32)
    lab = np.asarray(to_numpy({"l": labels})["l"])
    if s.ndim not in (1, 2) or lab.ndim != 1 or s.shape[0] != lab.shape[0]:
        raise ValueError(f"scores {s.shape} and labels {lab.shape}: want [N] or [N, C] and [N]")
    lab = lab.astype(np.int64 if np.issubdtype(lab.dtype, np.integer) else np.float32)
    st.save(_path(path, "FEDC_PREDICTIONS_OUT"), {"scores": s, "labels": lab})
    m = {"num_samples": int(lab.shape[0])}
    m.update(metrics or {})
    if metrics_path or os.environ.get("FEDC_METRICS_OUT"):
        save_metrics(m, metrics_path)
