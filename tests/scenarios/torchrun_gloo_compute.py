"""Data-parallel MLP on tabular data, launched with torchrun (2 processes, gloo); data in memory."""

import os
import sys
import time

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def main(seconds: float) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    data = TensorDataset(torch.tensor(x, dtype=torch.float32) / 16.0, torch.tensor(y))
    loader = DataLoader(data, batch_size=64, sampler=DistributedSampler(data, world, rank))
    model = DistributedDataParallel(torch.nn.Sequential(
        torch.nn.Linear(64, 1536), torch.nn.ReLU(), torch.nn.Linear(1536, 1536), torch.nn.ReLU(),
        torch.nn.Linear(1536, 10)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    end = time.perf_counter() + seconds
    done = torch.zeros(1)
    epoch = 0
    while not done.item():
        loader.sampler.set_epoch(epoch)
        epoch += 1
        for xb, yb in loader:
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done.fill_(float(time.perf_counter() > end))
            dist.all_reduce(done, op=dist.ReduceOp.MAX)
            if done.item():
                break
    if rank == 0:
        print(f"LOCAL_RANK={os.environ.get('LOCAL_RANK')} trained {epoch} epochs")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
