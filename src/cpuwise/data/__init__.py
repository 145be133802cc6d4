"""cpuwise.data: an input pipeline that autotunes its parallelism within a CPU and RAM budget.

    import cpuwise.data as cd
    ds = (cd.from_folder("train/").shuffle(seed=0)
            .map(cd.image.decode_crop(224), on_error="skip")
            .map(cd.image.random_flip())
            .batch(256).prefetch())
    for images, labels in ds: ...

Sources: from_folder, from_files, from_sequence, from_iterable (and from_csv). Stages: shuffle,
map, filter, batch, prefetch, cache, repeat. `ds.stats()` reports per-stage times, the consumer's
wait and each autotune decision; `ds.state_dict()` / `load_state_dict()` resume mid-epoch exactly.
Importing this package loads numpy only; image ops, adapters and tabular sources load on use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from cpuwise.data.dataset import Dataset
from cpuwise.data.sources import PairSequence, StrArray, compact, folder_listing
from cpuwise.data.specs import SourceSpec
from cpuwise.data.transform import RandomTransform, needs_rng, on_image, sample_rng
from cpuwise.errors import ConfigError, StateError

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
    "from_sequence",
    "image",
    "needs_rng",
    "on_image",
    "sample_rng",
]


def from_sequence(seq: Sequence[Any], name: str = "from_sequence") -> Dataset:
    """A pipeline over any indexable (len + integer __getitem__); a list of str is stored compactly.

    Workers receive the samples themselves, chunk by chunk, never the whole sequence: holding a
    large list of Python objects does not grow the workers' memory (no copy-on-read).
    """
    if not hasattr(seq, "__len__") or not hasattr(seq, "__getitem__"):
        raise ConfigError(f"from_sequence: expected an indexable (len and [i]), found {type(seq).__name__}. "
                          "Fix: pass a list/array, or use from_iterable for streams.")
    return Dataset(SourceSpec(name, seq=compact(seq) if isinstance(seq, list) else seq))


def from_files(paths: Iterable[str | os.PathLike[str]], labels: Sequence[int] | None = None) -> Dataset:
    """Samples `path` (or `(path, label)` when labels are given), in the given order."""
    import numpy as np

    plist = [os.fspath(p) for p in paths]
    lab = None
    if labels is not None:
        lab = np.asarray(labels, dtype=np.int64)
        if lab.shape != (len(plist),):
            raise ConfigError(f"from_files: expected {len(plist)} labels (one per path), found shape "
                              f"{lab.shape}. Fix: pass one int label per path.")
    return Dataset(SourceSpec("from_files", seq=PairSequence(StrArray(plist), lab)))


def from_folder(root: str | os.PathLike[str], extensions: tuple[str, ...] | None = None) -> Dataset:
    """Class-per-subfolder data (ImageFolder layout): sorted `(path, label)` samples; `ds.classes`.

    Args:
        extensions: file endings to take (default: common image formats; None in the tuple sense
            means the default, pass () to take every file).
    """
    from cpuwise.data.sources import IMAGE_EXTENSIONS

    exts = IMAGE_EXTENSIONS if extensions is None else (extensions or None)
    paths, labels, classes = folder_listing(root, exts)
    import numpy as np

    seq = PairSequence(StrArray(paths), np.asarray(labels, dtype=np.int64))
    return Dataset(SourceSpec(f"from_folder({os.fspath(root)})", seq=seq, classes=classes))


def from_iterable(source: Iterable[Any] | Callable[[], Iterable[Any]]) -> Dataset:
    """A stream: an iterable (re-iterable like a list, or a factory returning a fresh iterator).

    A one-shot iterator (a generator) works for a single epoch and cannot be resumed; pass a
    factory (`from_iterable(lambda: gen())`) for epochs and state_dict().
    """
    if callable(source) and not hasattr(source, "__iter__"):
        return Dataset(SourceSpec("from_iterable", factory=source))
    if not hasattr(source, "__iter__"):
        raise ConfigError(f"from_iterable: expected an iterable or a factory, found {type(source).__name__}. "
                          "Fix: pass a list, a generator, or a function returning an iterator.")
    if not isinstance(source, Iterator):
        return Dataset(SourceSpec("from_iterable", factory=lambda: source))
    used = [False]

    def once() -> Iterable[Any]:
        if used[0]:
            raise StateError(
                "from_iterable wraps a one-shot iterator: expected a fresh iterable for a new epoch or "
                "a resume, found it already consumed. Fix: pass a factory (from_iterable(lambda: "
                "make_iter())) or a re-iterable object such as a list."
            )
        used[0] = True
        return source

    return Dataset(SourceSpec("from_iterable", factory=once, one_shot=True))


_LAZY = {
    "from_csv": ("cpuwise.data.tabular", "from_csv"),
    "cache_features": ("cpuwise.data.features", "cache_features"),
    "find_batch_size": ("cpuwise.data.batchsize", "find_batch_size"),
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "image":
        return importlib.import_module("cpuwise.data.image")
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'cpuwise.data' has no attribute {name!r}")
