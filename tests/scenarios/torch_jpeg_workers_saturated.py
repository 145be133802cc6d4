"""Image classification: JPEGs decoded and augmented per sample in 2 DataLoader workers, a small CNN."""

import sys
import time

import numpy as np
import torch
from _data import decode_crop, jpegs
from torch.utils.data import DataLoader, Dataset


class Photos(Dataset):
    def __init__(self, files: list[bytes]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files) * 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng(i)
        x = decode_crop(self.files[i % len(self.files)], rng)
        x = (x - 0.45) / 0.225
        return torch.from_numpy(x), i % 10


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    loader = DataLoader(Photos(jpegs(48)), batch_size=32, shuffle=True, num_workers=2,
                        persistent_workers=True)
    model = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if time.perf_counter() > end:
                break


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
