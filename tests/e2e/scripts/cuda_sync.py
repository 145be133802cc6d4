"""A small CUDA training loop that syncs every step (loss.item())."""

import sys
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

model = torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 10)).cuda()
opt = torch.optim.SGD(model.parameters(), lr=0.01)
data = TensorDataset(torch.randn(2048, 512), torch.randint(0, 10, (2048,)))
end = time.perf_counter() + float(sys.argv[1] if len(sys.argv) > 1 else 3)
while time.perf_counter() < end:
    for x, y in DataLoader(data, batch_size=128, shuffle=True):
        x, y = x.cuda(non_blocking=True), y.cuda(non_blocking=True)
        for _ in range(10):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        loss.item()  # the host waits for the GPU here
