"""`cpuwise demo`'s training job (cpuwise.demo.train, --loader stock) with the benchmark's measurement loop:
its PIL decode -> RandomResizedCrop -> flip -> normalize Dataset in 2 persistent DataLoader workers, its
small CNN at one torch thread. Usage: demo_train.py DATA_DIR. SYNTHETIC=1: the synthetic-data version."""

import os
import sys
from pathlib import Path

import torch
from _loop import epochs, run, synthetic
from torch.utils.data import DataLoader

from cpuwise.demo.train import CROP, StockJpegDataset, list_images, small_cnn

BATCH = 32


def main() -> None:
    data = Path(sys.argv[1])
    torch.manual_seed(0)
    torch.set_num_threads(1)  # main threads
    paths, _ = list_images(data)
    classes = len({Path(p).parent.name for p in paths})
    model = small_cnn(classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def step(x, y):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    if os.environ.get("SYNTHETIC"):
        batches = synthetic(torch.randn(BATCH, 3, CROP, CROP), torch.randint(0, classes, (BATCH,)))
    else:
        loader = DataLoader(StockJpegDataset(data), batch_size=BATCH, shuffle=True, num_workers=2,
                            persistent_workers=True, drop_last=True)
        batches = epochs(loader)
    run(batches, step)


if __name__ == "__main__":
    main()
