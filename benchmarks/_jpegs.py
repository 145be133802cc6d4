"""Generate a photo-like JPEG folder in code (class-per-subfolder), shared by the data benchmarks.

Each image is ~500x375 and ~45 KB at quality 90: a smooth two-colour gradient, low-frequency colour
noise (like lighting), a few filled shapes with their own gradients, an oriented stripe texture and
per-pixel grain. That mix gives JPEG the edges, flat areas and high-frequency detail of a photo, so
decode times and file sizes are close to a natural-image data set's. Deterministic for a seed.

    from benchmarks._jpegs import make_jpeg_folder
    root = make_jpeg_folder("/tmp/jpegs", n=2000)
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 500, 375
QUALITY = 90


def photo_like(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """One photo-like uint8 RGB image (HxWx3) for `seed`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1) / 2
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    small = rng.normal(0, 40, (6, 8, 3)).astype(np.float32)
    light = np.asarray(Image.fromarray(small[..., 0]).resize((width, height), Image.Resampling.BICUBIC))
    img += light[..., None] * rng.uniform(0.5, 1.0, 3)
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.uniform(-50, width), rng.uniform(-50, height)
        w, h = rng.uniform(30, 250), rng.uniform(30, 200)
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=color)
        else:
            pts = [(x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)) for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(pts, fill=color)
    out = np.asarray(canvas).astype(np.float32)
    freq, theta = rng.uniform(0.05, 0.4), rng.uniform(0, np.pi)
    stripes = np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy))
    mask = (np.asarray(Image.fromarray((rng.random((3, 4)) * 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BILINEAR)) > 140)
    out += (stripes * rng.uniform(10, 30) * mask)[..., None]
    out += rng.normal(0, rng.uniform(2, 6), (height, width, 1)) + rng.normal(0, 1.5, (height, width, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def _write_one(args: tuple[str, int]) -> int:
    path, seed = args
    Image.fromarray(photo_like(seed)).save(path, quality=QUALITY)
    return os.path.getsize(path)


def make_jpeg_folder(root: str | os.PathLike[str], n: int = 2000, classes: int = 10, seed: int = 0,
                     workers: int | None = None) -> Path:
    """Write `n` JPEGs as root/class_k/img_i.jpg (reused when already there with the same settings)."""
    root = Path(root)
    spec = {"n": n, "classes": classes, "seed": seed, "w": WIDTH, "h": HEIGHT, "q": QUALITY, "v": 1}
    marker = root / "_spec.json"
    if marker.exists() and json.loads(marker.read_text()).get("spec") == spec:
        return root
    jobs = []
    for i in range(n):
        d = root / f"class_{i % classes:03d}"
        d.mkdir(parents=True, exist_ok=True)
        jobs.append((str(d / f"img_{i:06d}.jpg"), seed * 1_000_003 + i))
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        sizes = list(pool.map(_write_one, jobs, chunksize=16))
    marker.write_text(json.dumps({"spec": spec, "mean_bytes": int(np.mean(sizes))}))
    return root


def folder_stats(root: str | os.PathLike[str]) -> dict[str, int]:
    """Count and mean size of the JPEGs under `root` (for benchmark reports)."""
    files = sorted(Path(root).rglob("*.jpg"))
    sizes = [f.stat().st_size for f in files]
    return {"images": len(files), "mean_bytes": int(np.mean(sizes)) if sizes else 0,
            "width": WIDTH, "height": HEIGHT}
