"""Images fetched one by one from a slow object store (each read waits ~30 ms), then decoded."""

import sys
import time

import numpy as np
import torch
from _data import decode_crop, jpegs
from torch.utils.data import DataLoader, Dataset

READ_LATENCY_S = 0.030  # a round trip to remote storage: the process waits, the CPU does nothing


class RemoteImages(Dataset):
    def __init__(self, files: list[bytes]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files) * 20

    def fetch(self, i: int) -> bytes:
        time.sleep(READ_LATENCY_S)
        return self.files[i % len(self.files)]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = decode_crop(self.fetch(i), np.random.default_rng(i), size=96)
        return torch.from_numpy(x), i % 10


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    loader = DataLoader(RemoteImages(jpegs(16)), batch_size=16, shuffle=True, num_workers=2,
                        persistent_workers=True)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))
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
