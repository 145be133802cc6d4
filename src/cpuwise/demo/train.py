"""The demo's training job: a small CNN on the generated JPEGs, fed by a stock-style DataLoader.

    python -m cpuwise.demo.train --data DIR --loader stock --seconds 15
    python -m cpuwise.demo.train --data DIR --loader cpuwise --seconds 15

`stock` is the usual recipe done by hand (no torchvision): PIL decode -> RandomResizedCrop ->
flip -> float tensor -> normalize, per sample, in DataLoader workers. The model is small on
purpose, so the job is input-bound. `cpuwise` feeds the same model through cpuwise.data.
Prints one line `CPUWISE_DEMO_RESULT {json}` with images/s.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

import cpuwise.data as cd

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
CROP = 224


def list_images(root: Path) -> tuple[list[str], list[int]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    paths, labels = [], []
    for i, c in enumerate(classes):
        for p in sorted((root / c).glob("*.jpg")):
            paths.append(str(p))
            labels.append(i)
    return paths, labels


def random_resized_crop_box(w: int, h: int, rng: random.Random, scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params, in plain Python: (left, top, width, height)."""
    area = w * h
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        ar = math.exp(rng.uniform(*log_r))
        cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    side = min(w, h)
    return (w - side) // 2, (h - side) // 2, side, side


class StockJpegDataset:
    """The per-sample recipe most tutorials use, with PIL and numpy instead of torchvision."""

    def __init__(self, root: Path, seed: int = 0) -> None:
        self.paths, self.labels = list_images(root)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        rng = random.Random(hash((self.seed, i, time.perf_counter_ns())))
        with Image.open(self.paths[i]) as f:
            im = f.convert("RGB")
        left, top, cw, ch = random_resized_crop_box(im.width, im.height, rng)
        im = im.resize((CROP, CROP), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
        arr = np.asarray(im, dtype=np.float32)
        if rng.random() < 0.5:
            arr = arr[:, ::-1]
        arr = (arr - MEAN) / STD
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))), self.labels[i]


def small_cnn(classes: int) -> Any:
    nn = torch.nn
    # Small on purpose: a training step costs far less CPU than decoding and cropping its batch.
    return nn.Sequential(
        nn.AvgPool2d(8),
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes))


def stock_batches(root: Path, batch_size: int, workers: int) -> Any:
    ds: Any = StockJpegDataset(root)
    loader: Any = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0)
    while True:
        yield from loader


def cpuwise_batches(root: Path, batch_size: int) -> Any:
    ds = (cd.from_folder(str(root)).shuffle(seed=0).map(cd.image.decode_crop(CROP))
          .map(cd.image.random_flip()).batch(batch_size, drop_last=True).prefetch()
          .repeat().to_torch(normalize=(tuple(MEAN / 255), tuple(STD / 255))))
    yield from ds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--loader", choices=("stock", "cpuwise"), default="stock")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--max-steps", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for the model (0: torch's default). One keeps the verdict about "
                         "the input pipeline: with the workers decoding on every core, a multi-threaded "
                         "model step would fight them for the cores (the doctor then says 'oversubscribed').")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    paths, _ = list_images(args.data)
    classes = len({Path(p).parent.name for p in paths})
    model = small_cnn(classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = (stock_batches(args.data, args.batch_size, args.workers) if args.loader == "stock"
               else cpuwise_batches(args.data, args.batch_size))
    steps = images = 0
    t_first: float | None = None
    t_end = time.perf_counter() + args.seconds
    for x, y in batches:
        if t_first is None:
            t_first = time.perf_counter()  # throughput after the pipeline has started
        else:
            images += len(y)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if time.perf_counter() > t_end or steps >= args.max_steps:
            break
    elapsed = time.perf_counter() - (t_first or time.perf_counter())
    result = {"loader": args.loader, "steps": steps, "images_per_s": images / elapsed if elapsed > 0 else 0.0,
              "final_loss": float(loss.item()) if steps else None}
    print("CPUWISE_DEMO_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
