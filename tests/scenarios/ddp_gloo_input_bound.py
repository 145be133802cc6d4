"""Data-parallel training on 2 CPU ranks (torch.multiprocessing.spawn, gloo): each rank decodes its
own share of the JPEGs in one DataLoader worker."""

import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _data import decode_crop, jpegs
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class Photos(Dataset):
    def __init__(self, files: list[bytes], cost: int = 1) -> None:
        self.files, self.cost = files, cost

    def __len__(self) -> int:
        return len(self.files) * 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng(i)
        for _ in range(self.cost):  # several augmented views, averaged (test-time-augmentation style)
            x = decode_crop(self.files[i % len(self.files)], rng, size=160)
        return torch.from_numpy(x), i % 10


def worker(rank: int, world: int, seconds: float, slow_rank: int | None,
           crash_rank: int | None = None) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = Photos(jpegs(24, seed=rank), cost=4 if rank == slow_rank else 1)
    loader = DataLoader(data, batch_size=16, sampler=DistributedSampler(data, world, rank), num_workers=1,
                        persistent_workers=True)
    model = DistributedDataParallel(torch.nn.Sequential(
        torch.nn.AvgPool2d(4), torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(16, 10)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    end = time.perf_counter() + seconds
    done = torch.zeros(1)
    steps = 0
    while not done.item():
        for x, y in loader:
            steps += 1
            if rank == crash_rank and steps == 12:
                raise RuntimeError(f"rank {rank}: corrupt record in shard {steps}")
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done.fill_(float(time.perf_counter() > end and crash_rank is None))  # a crash comes first
            dist.all_reduce(done, op=dist.ReduceOp.MAX)  # every rank stops at the same step
            if done.item():
                break
    dist.destroy_process_group()


def main(seconds: float, slow_rank: int | None = None, crash_rank: int | None = None) -> None:
    os.environ["MASTER_PORT"] = str(29500 + os.getpid() % 2000)
    mp.spawn(worker, args=(2, seconds, slow_rank, crash_rank), nprocs=2, join=True)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
