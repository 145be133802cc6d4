"""The contract between the pipeline engine and the functions it maps.

Randomness: a transform that needs random numbers sets `needs_rng = True` and is called as
`fn(sample, rng)`. The engine builds `rng = sample_rng(seed, epoch, index)` from the pipeline seed,
the epoch and the sample's position in the epoch, so every sample sees the same random numbers
whichever worker (and however many workers) processes it — order and content are deterministic for
a seed whatever `num_workers` is. Plain transforms are called as `fn(sample)`.

Samples: sources yield any Python value; image sources yield `(path_or_bytes, label)`. Image
transforms change only the image part of a sample (see `on_image`), so they compose with labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class RandomTransform:
    """Base for transforms that draw random numbers: subclasses implement `__call__(sample, rng)`."""

    needs_rng = True

    def __call__(self, sample: Any, rng: np.random.Generator) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(sample, rng)")


def needs_rng(fn: Callable[..., Any]) -> bool:
    """True if `fn` must be called as `fn(sample, rng)`."""
    return bool(getattr(fn, "needs_rng", False))


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, index): same numbers in any worker."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index])))


def on_image(sample: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply `fn` to the image part of a sample: element 0 of a tuple/list, key "image" of a dict,
    or the sample itself otherwise."""
    if isinstance(sample, tuple):
        return (fn(sample[0]),) + sample[1:]
    if isinstance(sample, list):
        return [fn(sample[0]), *sample[1:]]
    if isinstance(sample, dict) and "image" in sample:
        out = dict(sample)
        out["image"] = fn(sample["image"])
        return out
    return fn(sample)
