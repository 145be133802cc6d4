"""A job that stops making progress: the Dataset waits on a lock that a thread of the parent held
when the DataLoader forked its workers (the child inherits the lock held, and no thread to release it)."""

import threading
import time

import torch
from torch.utils.data import DataLoader, Dataset

CACHE_LOCK = threading.Lock()


class Cached(Dataset):
    def __len__(self) -> int:
        return 10_000

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with CACHE_LOCK:  # a "thread-safe" cache shared with a background refresher
            return torch.full((8,), float(i)), i % 2


def refresher() -> None:
    while True:
        with CACHE_LOCK:
            time.sleep(0.5)  # refreshing the cache from disk


def main() -> None:
    threading.Thread(target=refresher, daemon=True).start()
    time.sleep(0.1)
    model = torch.nn.Linear(8, 2)
    for x, _ in DataLoader(Cached(), batch_size=32, num_workers=2, multiprocessing_context="fork"):
        model(x).sum().backward()


if __name__ == "__main__":
    main()
