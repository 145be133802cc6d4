"""Sources over what is already in memory: any indexable sequence, or any iterable.

Lists of `str` (file paths) are stored as one numpy byte buffer plus offsets (`StrArray`): a million
paths cost one allocation instead of a million Python objects, and nothing is touched by reference
counting, so processes that share the memory never copy it on read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from cpuwise.data.dataset import Dataset
from cpuwise.data.stages.source import SourceSpec
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


def from_sequence(seq: Sequence[Any], name: str = "from_sequence") -> Dataset:
    """A pipeline over any indexable (len + integer __getitem__); a list of str is stored compactly.

    Workers receive the samples themselves, chunk by chunk, never the whole sequence: holding a
    large list of Python objects does not grow the workers' memory (no copy-on-read).
    """
    if not hasattr(seq, "__len__") or not hasattr(seq, "__getitem__"):
        raise ConfigError(f"from_sequence: expected an indexable (len and [i]), found {type(seq).__name__}. "
                          "Fix: pass a list/array, or use from_iterable for streams.")
    return Dataset(SourceSpec(name, seq=compact(seq) if isinstance(seq, list) else seq))


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
