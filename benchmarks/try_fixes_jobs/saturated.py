"""tests/scenarios/torch_jpeg_workers_saturated.py for the benchmark: JPEGs decoded per sample in DataLoader
workers (2 persistent workers on 2 cores), a small CNN. SYNTHETIC=1: the synthetic-data version."""

import os
import sys
from pathlib import Path

import numpy as np
import torch

# the scenario corpus's JPEGs and decode (tests/scenarios/_data.py), shared with the scripts these copy
sys.path.append(str(Path(__file__).resolve().parents[2] / "tests" / "scenarios"))
from _data import decode_crop, jpegs  # noqa: E402
from _loop import epochs, run, synthetic  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

BATCH = 32


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


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # main threads
    model = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def step(x, y):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    if os.environ.get("SYNTHETIC"):
        batches = synthetic(torch.randn(BATCH, 3, 224, 224), torch.randint(0, 10, (BATCH,)))
    else:
        loader = DataLoader(Photos(jpegs(48)), batch_size=BATCH, shuffle=True, num_workers=2,
                            persistent_workers=True)
        batches = epochs(loader)
    run(batches, step)


if __name__ == "__main__":
    main()
