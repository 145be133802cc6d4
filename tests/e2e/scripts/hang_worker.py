"""A DataLoader worker blocks forever in __getitem__; the main process waits for it with the CPU idle."""

import threading

import torch
from torch.utils.data import DataLoader, Dataset


class Stuck(Dataset):
    def __len__(self) -> int:
        return 100

    def __getitem__(self, i: int):
        if i >= 8:
            threading.Event().wait()  # a deadlock inside the worker
        return torch.zeros(2)


if __name__ == "__main__":
    for _ in DataLoader(Stuck(), batch_size=4, num_workers=1, timeout=0):
        pass
