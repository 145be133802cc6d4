"""Short epochs over a data set whose per-process index is built on first use (parsing a manifest);
the DataLoader starts fresh workers every epoch."""

import json
import sys
import time

import numpy as np
import torch
from _data import decode_crop, jpegs
from torch.utils.data import DataLoader, Dataset


class Indexed(Dataset):
    def __init__(self, files: list[bytes]) -> None:
        self.files = files
        self.manifest = json.dumps([{"id": i, "path": f"shard-{i % 64}/img{i}.jpg", "label": i % 10,
                                     "tags": [f"t{k}" for k in range(i % 7)]} for i in range(100_000)])
        self.index: dict[int, dict] | None = None

    def __len__(self) -> int:
        return 256

    def lookup(self, i: int) -> dict:
        if self.index is None:  # built in each worker process on its first sample
            self.index = {row["id"]: row for row in json.loads(self.manifest)}
        return self.index[i]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.lookup(i)
        x = decode_crop(self.files[i % len(self.files)], np.random.default_rng(i), size=64)
        return torch.from_numpy(x), row["label"]


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = Indexed(jpegs(16))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for x, y in DataLoader(data, batch_size=32, shuffle=True, num_workers=2):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
