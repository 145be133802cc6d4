"""Trains forever (until interrupted); writes how many steps it has made to a marker file."""

import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

marker = Path(sys.argv[1])
loader = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=8)
steps = 0
while True:
    for (_x,) in loader:
        time.sleep(0.01)
        steps += 1
        marker.write_text(str(steps))
