"""Compute-bound: batches are ready in memory, each step is a few matmuls."""

import sys
import time

import torch
from torch.utils.data import DataLoader, TensorDataset


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # one busy core, whatever else runs on the machine
    data = TensorDataset(torch.randn(512, 256), torch.randint(0, 10, (512,)))
    model = torch.nn.Sequential(torch.nn.Linear(256, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 2048),
                                torch.nn.ReLU(), torch.nn.Linear(2048, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for x, y in DataLoader(data, batch_size=64, shuffle=True):
            loss = torch.nn.functional.cross_entropy(model(x), y)  # far heavier than indexing a batch
            opt.zero_grad()
            loss.backward()
            opt.step()
            if time.perf_counter() > end:
                break


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
