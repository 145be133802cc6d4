"""Crashes with an uncaught exception after a few steps."""

import torch
from torch.utils.data import DataLoader, TensorDataset

loader = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=8)
for i, (_x,) in enumerate(loader):
    if i == 3:
        raise ValueError("cpuwise-e2e: boom at step 3")
