"""Real data for the scenario scripts, made in code: photo-like JPEGs (bytes in memory) and text.

Nothing here talks to the doctor; it is what a user's data set would be.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def jpegs(n: int, size: tuple[int, int] = (500, 375), seed: int = 0, quality: int = 90) -> list[bytes]:
    """`n` distinct JPEG files (as bytes) of smooth gradients, shapes and sensor-like noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        base = rng.uniform(0, 255, 3)
        gx, gy = rng.uniform(-120, 120, 3), rng.uniform(-120, 120, 3)
        grad = (xx / w)[..., None] * gx + (yy / h)[..., None] * gy
        arr = np.clip(base + grad + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr)
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            x1, y1 = x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 150))
            fill = tuple(int(c) for c in rng.integers(0, 255, 3))
            (draw.ellipse if i % 2 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
        im = im.filter(ImageFilter.GaussianBlur(1.2))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def decode_crop(data: bytes, rng: np.random.Generator, size: int = 224) -> np.ndarray:
    """The usual training transform: decode, random-resized crop, flip; float32 CHW in 0..1."""
    with Image.open(io.BytesIO(data)) as f:
        im = f.convert("RGB")
    w, h = im.size
    scale = rng.uniform(0.3, 1.0)
    cw, ch = int(w * scale), int(h * scale)
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = im.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
    arr = np.asarray(im, dtype=np.float32) / 255.0
    if rng.random() < 0.5:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


MODULES = ("os", "re", "json", "collections", "itertools", "functools", "pathlib", "string", "textwrap",
           "math", "statistics", "random", "datetime", "decimal", "fractions", "heapq", "bisect", "struct",
           "codecs", "io", "typing", "dataclasses", "enum", "inspect", "ast", "tokenize", "argparse",
           "logging", "csv", "zipfile", "tarfile", "gzip", "hashlib", "shutil", "glob", "tempfile",
           "threading", "queue", "subprocess", "socket", "html", "urllib.parse", "unittest", "difflib",
           "pprint", "operator", "contextlib", "abc", "copy", "pickle", "calendar", "locale", "email.message")


def sentences(limit: int = 4000) -> list[str]:
    """First lines of standard-library docstrings: real English text of varied length."""
    import importlib

    out: list[str] = []
    for name in MODULES:
        mod = importlib.import_module(name)
        for obj in [mod, *vars(mod).values()]:
            doc = getattr(obj, "__doc__", None) if callable(obj) or obj is mod else None
            doc = doc if isinstance(doc, str) else ""
            line = doc.strip().split("\n", 1)[0].strip() if doc else ""
            if 20 <= len(line) <= 200:
                out.append(line)
            if len(out) >= limit:
                return out
    return out
