#!/usr/bin/python3
"""make_init.py - the job's initial model: the CNN's state dict, seeded, as
safetensors (the coordinator's [model] init).

    make_init.py OUT.safetensors [--seed N]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cnn import Net  # noqa: E402

import fedc  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
torch.manual_seed(a.seed)
net = Net()
fedc.st.save(a.out, fedc.to_numpy(net.state_dict()), metadata={"model": "pytorch-cnn"})
n = sum(p.numel() for p in net.parameters())
print(f"wrote {a.out}: {len(net.state_dict())} tensors, {n} parameters")
