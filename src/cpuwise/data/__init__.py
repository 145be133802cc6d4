"""cpuwise.data: an input pipeline that autotunes its parallelism within a CPU and RAM budget.

    import cpuwise.data as cd
    ds = (cd.from_folder("train/").shuffle(seed=0)
            .map(cd.image.decode_crop(224), on_error="skip")
            .map(cd.image.random_flip())
            .batch(256).prefetch())
    for images, labels in ds: ...

Sources: from_folder, from_files, from_sequence, from_iterable (and from_csv, from_ray). Stages:
shuffle, shard, map, filter, batch, prefetch, cache, repeat, take. `ds.stats()` reports per-stage
times, the consumer's wait and each autotune decision; `ds.state_dict()` / `load_state_dict()` resume
mid-epoch exactly (a sharded pipeline's state resumes any rank of any world size). `ds.to_ray()` runs
the maps on Ray Data. Importing this package loads numpy only; image ops, adapters and tabular
sources load on use.

Layout: dataset.py (the chainable Dataset), stages/ (one module per stage), _runtime/ (build,
iterator, autotune, stats, the shared pools), _engine/ (worker pools and shared memory), formats/
(sources), tools/, image/, adapters/. ARCHITECTURE.md describes how they fit.
"""

from __future__ import annotations

import importlib
from typing import Any

from cpuwise.data.dataset import Dataset
from cpuwise.data.formats.folder import from_files, from_folder
from cpuwise.data.formats.sequence import StrArray, from_iterable, from_sequence
from cpuwise.data.transform import RandomTransform, needs_rng, on_image, sample_rng

__all__ = [
    "Dataset",
    "RandomTransform",
    "StrArray",
    "cache_features",
    "find_batch_size",
    "from_csv",
    "from_files",
    "from_folder",
    "from_iterable",
    "from_ray",
    "from_sequence",
    "image",
    "needs_rng",
    "on_image",
    "sample_rng",
]

# Loaded on first use: they pull in pandas/pyarrow, torch, ray or the image libraries when called, and
# `import cpuwise.data` stays at numpy.
_LAZY = {
    "from_csv": ("cpuwise.data.formats.csv", "from_csv"),
    "cache_features": ("cpuwise.data.tools.features", "cache_features"),
    "find_batch_size": ("cpuwise.data.tools.batchsize", "find_batch_size"),
    "from_ray": ("cpuwise.data.adapters.ray", "from_ray"),
}


def __getattr__(name: str) -> Any:
    if name == "image":
        return importlib.import_module("cpuwise.data.image")
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'cpuwise.data' has no attribute {name!r}")
