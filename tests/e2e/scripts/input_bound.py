"""Input-bound on purpose: slow per-sample preprocessing in one worker, a tiny model step."""

import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class SlowImages(Dataset):
    def __len__(self) -> int:
        return 10_000

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        img = rng.random((96, 96, 3), dtype=np.float32)
        for _ in range(6):  # "augmentations": a few ms of CPU per sample
            img = np.sqrt(img * 1.01 + 0.01)
        return torch.from_numpy(img).permute(2, 0, 1), i % 10


def main(seconds: float) -> None:
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 96 * 96, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(SlowImages(), batch_size=16, num_workers=1)
    end = time.perf_counter() + seconds
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if time.perf_counter() > end:
            break


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
