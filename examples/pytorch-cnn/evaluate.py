#!/usr/bin/python3
"""evaluate.py - a committed model (fedc-coordinator export ROUND FILE) on
the 10,000 Fashion-MNIST test images: prints its accuracy.

    evaluate.py MODEL.safetensors IMAGES LABELS
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cnn import Net, load_set, threads  # noqa: E402

import fedc  # noqa: E402

threads()
net = Net()
fedc.load_state_dict(net, sys.argv[1])
x, y = load_set(sys.argv[2], sys.argv[3])
net.eval()
with torch.no_grad():
    pred = torch.cat([net(x[i:i + 2000]).argmax(1) for i in range(0, len(y), 2000)])
print(f"{float((pred == y).float().mean()):.4f}")
