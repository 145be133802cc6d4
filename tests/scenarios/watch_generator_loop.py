"""A hand-written batch generator (no DataLoader) timed with cpuwise.watch(): the batches are
augmented in the training process itself."""

import sys
import time

import numpy as np
import torch
from _data import decode_crop, jpegs

import cpuwise


def batches(files: list[bytes], batch_size: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    while True:
        idx = rng.integers(0, len(files), batch_size)
        x = np.stack([decode_crop(files[i], rng, size=128) for i in idx])
        yield torch.from_numpy(x), torch.from_numpy(idx % 10)


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    end = time.perf_counter() + seconds
    with cpuwise.watch() as w:
        for x, y in w.iter(batches(jpegs(32), 32)):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if time.perf_counter() > end:
                break


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
