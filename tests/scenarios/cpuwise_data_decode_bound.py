"""Image classification fed by a cpuwise.data pipeline (folder of JPEGs, decode + crop + flip)."""

import sys
import tempfile
import time
from pathlib import Path

import torch
from _data import jpegs

import cpuwise.data as cd


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="photos-"))
    for i, data in enumerate(jpegs(96)):
        folder = root / f"class{i % 4}"
        folder.mkdir(exist_ok=True)
        (folder / f"{i}.jpg").write_bytes(data)
    ds = (cd.from_folder(root).shuffle(seed=0).map(cd.image.decode_crop(224)).map(cd.image.random_flip())
          .batch(32, drop_last=True).prefetch())
    model = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for x, y in ds.to_torch(normalize="imagenet"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if time.perf_counter() > end:
                break
    ds.close()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
