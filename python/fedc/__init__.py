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
                         "seed": "...", "job": {...the job object...},
                         "correction": path (SCAFFOLD rounds only)}
  FEDC_CORRECTION_IN    SCAFFOLD rounds only: the drift correction c - c_i
                        (safetensors, the model's tensor names and shapes)

    import fedc
    t = fedc.task()
    w = fedc.load_model()                    # name -> numpy array
    ... train ...
    fedc.save_update(w, num_samples=n, train_loss=loss)

With PyTorch: fedc.load_state_dict(module) before training,
fedc.save_update(module.state_dict(), ...) after. The update is written in
the global model's dtypes (an F16 tensor stays F16) unless told otherwise.

In a SCAFFOLD job (t.correction() is not None) every local step adds the
correction to its minibatch gradient, y <- y - lr (g(y) + c - c_i), at the
job's lr, and the update says how many steps were taken:

    corr = t.correction()                    # or t.correction("torch", module)
    ... g = gradients; g = fedc.apply_correction(g, corr); w -= lr * g ...
    ... torch: loss.backward(); fedc.apply_correction(module, corr); opt.step()
    fedc.save_update(w, num_samples=n, train_loss=loss, steps=k)
"""
import json
import math
import os

import numpy as np

from . import safetensors as st
from .safetensors import FormatError, Tensors  # noqa: F401
from .tabular import read_table, standardize  # noqa: F401

__all__ = ["Task", "task", "load_model", "load_state_dict", "to_numpy", "save_update",
           "save_metrics", "save_predictions", "apply_correction", "st", "FormatError", "Tensors",
           "read_table", "standardize"]
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
        # SCAFFOLD rounds: the drift correction's file, else None
        self.correction_in = env.get("FEDC_CORRECTION_IN") or d.get("correction")

    def correction(self, framework="numpy", module=None, device=None):
        """SCAFFOLD's drift correction c - c_i for this round, or None when
        the round has none (not a SCAFFOLD job, or an evaluate task).
        framework "numpy": name -> float32 array, the model's names and
        shapes (a fedc.Tensors); "torch": a state dict of torch tensors,
        each cast to the dtype and device of module's parameter of that
        name when a module is given (else to device, if given). Every
        local SGD step adds it to its minibatch gradient
        (fedc.apply_correction), and fedc.save_update must then be told the
        step count (steps=)."""
        if not self.correction_in:
            return None
        c = st.load(self.correction_in)
        if framework == "numpy":
            return c
        if framework != "torch":
            raise ValueError(f"framework must be 'numpy' or 'torch', not {framework!r}")
        import torch
        own = dict(module.named_parameters()) if module is not None else {}
        out = {}
        for k, v in c.items():
            t = torch.from_numpy(np.ascontiguousarray(v))
            if k in own:
                t = t.to(dtype=own[k].dtype, device=own[k].device)
            elif device is not None:
                t = t.to(device=device)
            out[k] = t
        return out

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


def apply_correction(target, correction):
    """Add SCAFFOLD's correction to one step's gradients, before the
    optimizer steps: y <- y - lr (g(y) + c - c_i).

    target is a torch.nn.Module (after loss.backward(): each named
    parameter's .grad gets the correction of its name added in place;
    returns the module) or a dict of numpy gradients (returns a new dict,
    each gradient plus the correction of its name, in the gradient's
    dtype). correction is what Task.correction gives (numpy or torch);
    None leaves the gradients as they are. A gradient without a
    correction of its name, or of another shape, is a ValueError: the
    correction is in the model's layout, as the gradients must be."""
    if correction is None:
        return target
    if hasattr(target, "named_parameters"):
        import torch
        for name, p in target.named_parameters():
            if p.grad is None:
                continue
            if name not in correction:
                raise ValueError(f"the correction has no tensor '{name}'")
            c = correction[name]
            if not isinstance(c, torch.Tensor):
                c = torch.from_numpy(np.ascontiguousarray(c))
            if tuple(c.shape) != tuple(p.grad.shape):
                raise ValueError(f"'{name}': correction {tuple(c.shape)}, gradient "
                                 f"{tuple(p.grad.shape)}")
            p.grad.add_(c.to(dtype=p.grad.dtype, device=p.grad.device))
        return target
    out = {}
    for name, g in target.items():
        if name not in correction:
            raise ValueError(f"the correction has no tensor '{name}'")
        g = np.asarray(g)
        c = np.asarray(to_numpy({name: correction[name]})[name])
        if c.shape != g.shape:
            raise ValueError(f"'{name}': correction {c.shape}, gradient {g.shape}")
        out[name] = (g + c).astype(g.dtype, copy=False)
    return out


def save_update(tensors, num_samples, train_loss, path=None, metrics=None, dtypes=None,
                metrics_path=None, steps=None):
    """Write the update (FEDC_UPDATE_OUT, or path) with metadata
    num_samples and train_loss, and the metrics JSON beside it
    (FEDC_METRICS_OUT, or metrics_path) with those two and any extra
    numbers in metrics. Each tensor is written in the dtype the global
    model had (load_model remembers them) unless dtypes says otherwise.
    num_samples must be an integer >= 1 and train_loss finite: fedc-client
    refuses anything else. steps: the local SGD steps taken (an integer
    >= 1), written to the metadata and the metrics; required in a SCAFFOLD
    round (FEDC_CORRECTION_IN set), where the client computes its control
    variate from it."""
    n = int(num_samples)
    if n != num_samples or n < 1:
        raise ValueError(f"num_samples must be an integer >= 1, not {num_samples}")
    loss = _finite_number(train_loss, "train_loss")
    meta = {"num_samples": str(n), "train_loss": repr(loss)}
    if steps is None and os.environ.get("FEDC_CORRECTION_IN") and path is None:
        raise ValueError("a SCAFFOLD round (FEDC_CORRECTION_IN) needs steps=, the number of "
                         "local SGD steps taken")
    if steps is not None:
        k = int(steps)
        if k != steps or k < 1:
            raise ValueError(f"steps must be an integer >= 1, not {steps}")
        meta["steps"] = str(k)
    arrays = to_numpy(tensors)
    want = dict(_last_dtypes)
    want.update(dtypes or {})
    want = {k: v for k, v in want.items() if k in arrays}
    st.save(_path(path, "FEDC_UPDATE_OUT"), arrays, metadata=meta, dtypes=want)
    m = {"num_samples": n, "train_loss": loss}
    if steps is not None:
        m["steps"] = int(steps)
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
