"""cnn.py - the model of the example and the Fashion-MNIST reading, shared by
make_init.py, train.py and evaluate.py.

A small CNN in the spirit of Flower's quickstart: two 5x5 convolutions
(16 and 32 channels) each followed by ReLU and 2x2 max pooling, then a
512 -> 128 -> 10 classifier (80,202 parameters, all F32).
"""
import gzip
import os
import struct

import numpy as np
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5)   # 28 -> 24 -> pool 12
        self.conv2 = nn.Conv2d(16, 32, 5)  # 12 -> 8 -> pool 4
        self.fc1 = nn.Linear(32 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def read_idx(path):
    """An unsigned-byte IDX file (gzipped or not) as a numpy array."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with (gzip.open if gz else open)(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def load_set(images, labels, limit=0):
    """(x [N, 1, 28, 28] float32 in [0, 1], y [N] int64) tensors."""
    x = read_idx(images)
    y = read_idx(labels)
    if limit:
        x, y = x[:limit], y[:limit]
    x = torch.from_numpy(x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return x, torch.from_numpy(y.astype(np.int64))


def threads():
    """Torch threads per process: FEDC_EXAMPLE_THREADS, default 1 (four
    sites share the machine)."""
    n = int(os.environ.get("FEDC_EXAMPLE_THREADS", "1"))
    torch.set_num_threads(n)
    return n
