"""Tabular classification from tensors in memory: a wide MLP, the batches are ready at once."""

import sys
import time

import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x, y = load_digits(return_X_y=True)
    data = TensorDataset(torch.tensor(x, dtype=torch.float32) / 16.0, torch.tensor(y))
    model = torch.nn.Sequential(torch.nn.Linear(64, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 2048),
                                torch.nn.ReLU(), torch.nn.Linear(2048, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for xb, yb in DataLoader(data, batch_size=128, shuffle=True):
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if time.perf_counter() > end:
                break


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
