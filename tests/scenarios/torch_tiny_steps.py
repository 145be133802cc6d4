"""A small regression model on in-memory tensors fed through (persistent) DataLoader worker processes,
batch 8."""

import sys
import time

import torch
from sklearn.datasets import load_diabetes
from torch.utils.data import DataLoader, TensorDataset


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y = load_diabetes(return_X_y=True)
    data = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    loader = DataLoader(data, batch_size=8, shuffle=True, num_workers=2, persistent_workers=True)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for xb, yb in loader:
            loss = torch.nn.functional.mse_loss(model(xb).squeeze(1), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
