"""Crop boxes drawn from an rng: one piece of math shared by the CPU ops and the GPU path.

`random_resized_crop_box` follows torchvision's `RandomResizedCrop.get_params` step for step (ten
tries at a random area and log-uniform aspect ratio, then a central fallback), with numpy's
Generator in place of torch's global RNG, so the CPU path (`decode_crop`) and the GPU path
(`gpu.crop_params`) draw the same box and the same flip for the same `sample_rng(seed, epoch, index)`.

The DCT-scale choice lives here too: JPEG decoders can emit 1/2, 1/4 or 1/8 of the full size almost
for free, and `reduction_factor` picks the largest such factor that still leaves the crop at least as
large as the output, so the reduced decode only throws away pixels the resize would discard anyway.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from cpuwise.errors import ConfigError

REDUCTIONS: tuple[int, ...] = (1, 2, 4, 8)


class Box(NamedTuple):
    """A crop in pixel coordinates of the full-size image: rows top..top+height, cols left..left+width."""

    top: int
    left: int
    height: int
    width: int


def check_range(name: str, pair: tuple[float, float], low: float = 0.0) -> tuple[float, float]:
    """Validate a (min, max) pair such as scale=(0.08, 1.0)."""
    try:
        a, b = float(pair[0]), float(pair[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"{name} must be a (min, max) pair of numbers, got {pair!r}") from exc
    if not (low < a <= b) or not math.isfinite(b):
        raise ConfigError(f"{name} must satisfy {low} < min <= max, got {pair!r}; e.g. {name}=(0.08, 1.0)")
    return a, b


def output_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """`size` as (height, width): an int means a square."""
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ConfigError(f"size must be >= 1 pixel per side, got {size!r}; e.g. size=224")
    return h, w


def random_resized_crop_box(rng: np.random.Generator, height: int, width: int,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Box:
    """torchvision's RandomResizedCrop box for an image of `height` x `width`, drawn from `rng`."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return Box(top, left, h, w)
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return Box((height - h) // 2, (width - w) // 2, h, w)


def center_crop_box(height: int, width: int, out_h: int, out_w: int, fraction: float = 0.875) -> Box:
    """The central box that Resize(shorter side -> min(out) / fraction) + CenterCrop(out) would keep.

    With fraction=0.875 this is the usual evaluation recipe (Resize(256) + CenterCrop(224)), computed
    without resizing the whole image first; fraction=1.0 keeps the largest central box.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}; e.g. fraction=0.875")
    k = fraction * min(height, width) / min(out_h, out_w)
    h = max(1, min(height, int(round(out_h * k))))
    w = max(1, min(width, int(round(out_w * k))))
    return Box(int(round((height - h) / 2.0)), int(round((width - w) / 2.0)), h, w)


def draw_flip(rng: np.random.Generator, p: float) -> bool:
    """Whether to mirror horizontally; drawn after the box so both paths consume the rng alike."""
    return bool(p > 0 and rng.random() < p)


def reduction_factor(box: Box, out_h: int, out_w: int, allowed: tuple[int, ...] = REDUCTIONS) -> int:
    """Largest DCT reduction that keeps the crop at >= the output resolution in both directions."""
    best = 1
    for f in allowed:
        if box.height / f >= out_h and box.width / f >= out_w:
            best = max(best, f)
    return best


def scale_box(box: Box, sy: float, sx: float, height: int, width: int) -> Box:
    """`box` mapped into an image scaled by (sy, sx) of size height x width, rounded and clamped."""
    top, left = int(round(box.top * sy)), int(round(box.left * sx))
    bottom = int(round((box.top + box.height) * sy))
    right = int(round((box.left + box.width) * sx))
    top, left = min(max(top, 0), height - 1), min(max(left, 0), width - 1)
    bottom, right = min(max(bottom, top + 1), height), min(max(right, left + 1), width)
    return Box(top, left, bottom - top, right - left)
