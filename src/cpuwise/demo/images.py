"""Generate a small photo-like JPEG data set (gradients, shapes, noise) in class folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CLASSES = ("ellipses", "boxes", "triangles", "stripes")
SIZE = (500, 375)  # the classic ImageNet-ish photo size
MARKER = "cpuwise-demo.json"


def _image(rng: np.random.Generator, label: int, size: tuple[int, int]) -> object:
    from PIL import Image, ImageDraw, ImageFilter  # lazy: `cpuwise demo --help` stays quick

    w, h = size
    c0 = rng.integers(0, 256, 3).astype(np.float32)
    c1 = rng.integers(0, 256, 3).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    tilt = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None] * np.float32(rng.uniform(-0.5, 0.5))
    mix = np.clip(ramp + tilt, 0, 1)
    base = (c0 * (1 - mix) + c1 * mix).astype(np.uint8)
    img = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 7))):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(20, 110))
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        if label == 0:
            draw.ellipse((x - r, y - r // 2, x + r, y + r // 2), fill=color)
        elif label == 1:
            draw.rectangle((x - r, y - r, x + r, y + r // 3), fill=color)
        elif label == 2:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=color)
        else:
            draw.line((x - r, y - r, x + r, y + r), fill=color, width=int(rng.integers(4, 16)))
    img = img.filter(ImageFilter.BoxBlur(1))  # soften the drawn edges, as a lens would
    noisy = np.asarray(img, dtype=np.int16) + rng.integers(-14, 15, (h, w, 3), dtype=np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def make_dataset(root: str | Path, n: int, *, seed: int = 0, size: tuple[int, int] = SIZE) -> Path:
    """Write `n` JPEGs under root/<class>/ (reused when a set of the same n and size is there)."""
    root = Path(root)
    marker = root / MARKER
    want = {"n": n, "seed": seed, "size": list(size), "classes": list(CLASSES)}
    try:
        if json.loads(marker.read_text()) == want:
            return root
    except (OSError, ValueError):
        pass
    rng = np.random.default_rng(seed)
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
        for old in (root / c).glob("img_*.jpg"):  # a set of another size: never train on leftovers
            old.unlink()
    for i in range(n):
        label = i % len(CLASSES)
        img = _image(rng, label, size)
        img.save(root / CLASSES[label] / f"img_{i:05d}.jpg", quality=90)  # type: ignore[attr-defined]
    marker.write_text(json.dumps(want))
    return root
