"""Oversubscribed: every DataLoader worker runs big multi-threaded matmuls on a 2-core machine."""

import os
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset

THREADS = max(8, 4 * len(os.sched_getaffinity(0)))  # pools far above the cores, on any machine


class MatmulData(Dataset):
    def __len__(self) -> int:
        return 100_000

    def __getitem__(self, i: int):
        a = torch.randn(192, 192)
        for _ in range(4):
            a = torch.tanh(a @ a / 192.0)
        return a.flatten()[:64], i % 10


def init_worker(worker_id: int) -> None:
    torch.set_num_threads(THREADS)  # the classic mistake: a full-size pool in every worker


def main(seconds: float) -> None:
    torch.set_num_threads(THREADS)
    model = torch.nn.Linear(64, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(MatmulData(), batch_size=8, num_workers=4, worker_init_fn=init_worker)
    end = time.perf_counter() + seconds
    for x, y in loader:
        big = torch.randn(384, 384)
        _ = big @ big  # the main process uses its pool too
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if time.perf_counter() > end:
            break


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.5)
