"""Where samples come from: indexable sequences, file lists, folders, and plain iterables.

Indexable sources (`from_sequence`, `from_files`, `from_folder`) let a following `shuffle` draw a
global permutation per epoch and let the pipeline resume at any position in O(1). Lists of `str`
(file paths) are stored as one numpy byte buffer plus offsets (`StrArray`): a million paths cost
one allocation instead of a million Python objects, and nothing is touched by reference counting,
so processes that share the memory never copy it on read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise.data.stage import Stage
from cpuwise.errors import ConfigError, StateError


class StrArray(Sequence[str]):
    """An immutable list of str backed by one uint8 buffer and int64 offsets."""

    def __init__(self, items: Iterable[str]) -> None:
        encoded = [s.encode("utf-8", "surrogateescape") for s in items]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._offsets[1:])
        self._data = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        n = len(self._offsets) - 1
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"StrArray index {i} out of range for {n} items")
        a, b = self._offsets[i], self._offsets[i + 1]
        return self._data[a:b].tobytes().decode("utf-8", "surrogateescape")

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes + self._offsets.nbytes)


class PairSequence(Sequence[Any]):
    """(path, label) pairs from a StrArray and an int64 label array; no per-sample objects."""

    def __init__(self, paths: StrArray, labels: np.ndarray | None) -> None:
        self.paths, self.labels = paths, labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        if self.labels is None:
            return self.paths[i]
        return (self.paths[i], int(self.labels[i]))


def compact(seq: Sequence[Any]) -> Sequence[Any]:
    """Store a list of str as a StrArray; leave every other sequence as it is."""
    if isinstance(seq, list) and seq and all(type(s) is str for s in seq):
        return StrArray(seq)
    return seq


class IndexSource(Stage):
    """Yields seq[order[pos]] for pos = 0, 1, ...; `order` is None (identity) or a permutation."""

    POS_KEY = "pos"
    kind = "source"

    def __init__(self, name: str, seq: Sequence[Any],
                 order_fn: Callable[[], np.ndarray | None] | None = None) -> None:
        super().__init__(name)
        self.seq = seq
        self.order_fn = order_fn
        self._order: np.ndarray | None = None
        self._pos = 0

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        self._order = self.order_fn() if self.order_fn is not None else None
        self._pos = 0
        if initial_state is not None:
            pos = int(initial_state[self.POS_KEY])
            if not 0 <= pos <= len(self.seq):
                raise StateError(
                    f"source '{self.name}': expected a position in [0, {len(self.seq)}], found {pos}. "
                    "Fix: load a state saved from a pipeline over the same data."
                )
            self._pos = pos

    def next(self) -> Any:
        if self._pos >= len(self.seq):
            raise StopIteration
        i = self._pos if self._order is None else int(self._order[self._pos])
        self._pos += 1
        return self.seq[i]

    def get_state(self) -> dict[str, Any]:
        return {self.POS_KEY: self._pos}


class IterSource(Stage):
    """Yields from an iterable; resuming re-creates it from the factory and skips what was seen."""

    POS_KEY = "pos"
    kind = "source"

    def __init__(self, name: str, factory: Callable[[], Iterable[Any]], one_shot: bool) -> None:
        super().__init__(name)
        self.factory, self.one_shot = factory, one_shot
        self._it: Iterator[Any] | None = None
        self._pos = 0

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        self._it = iter(self.factory())
        self._pos = 0
        skip = 0 if initial_state is None else int(initial_state[self.POS_KEY])
        for _ in range(skip):
            try:
                next(self._it)
            except StopIteration:
                raise StateError(
                    f"source '{self.name}': expected at least {skip} items to skip on resume, found "
                    f"{self._pos}. Fix: load a state saved from a pipeline over the same data."
                ) from None
            self._pos += 1

    def next(self) -> Any:
        assert self._it is not None
        item = next(self._it)
        self._pos += 1
        return item

    def get_state(self) -> dict[str, Any]:
        return {self.POS_KEY: self._pos}


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif")


def folder_listing(
    root: str | os.PathLike[str], extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS,
) -> tuple[list[str], list[int], list[str]]:
    """Class-per-subfolder listing (ImageFolder layout): sorted paths, labels, and class names."""
    base = Path(root)
    if not base.is_dir():
        raise ConfigError(
            f"from_folder: expected a directory with one subfolder per class, found "
            f"{'nothing' if not base.exists() else 'a file'} at '{base}'. Fix: pass the data set root."
        )
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ConfigError(
            f"from_folder: expected class subfolders under '{base}', found none. Fix: arrange files as "
            "root/<class>/<file> (like torchvision ImageFolder)."
        )
    paths: list[str] = []
    labels: list[int] = []
    exts = tuple(e.lower() for e in extensions) if extensions else None
    for label, cls in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(base / cls, followlinks=True):
            dirnames.sort()
            for fname in sorted(filenames):
                if fname.startswith(".") or (exts and not fname.lower().endswith(exts)):
                    continue
                paths.append(os.path.join(dirpath, fname))
                labels.append(label)
    if not paths:
        raise ConfigError(
            f"from_folder: expected files with extensions {exts} under '{base}', found none. Fix: "
            "check the path, or pass extensions=None to take every file."
        )
    return paths, labels, classes
