"""source: where every pipeline starts - an indexable sequence, or an iterable re-made each epoch.

An indexable source (`from_sequence`, `from_files`, `from_folder`, `from_csv`) lets a following
`shuffle` draw a global permutation per epoch and resumes at any position in O(1); an iterable
source re-creates its iterator from the factory and skips what was delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from cpuwise.data.stages._base import BuildContext, Spec, Stage, state_int
from cpuwise.errors import StateError


@dataclass(frozen=True, eq=False)
class SourceSpec(Spec):
    """The start of every chain: `seq` (indexable) or `factory` (a fresh iterable per epoch)."""

    name: str
    seq: Sequence[Any] | None = None
    factory: Callable[[], Iterable[Any]] | None = None
    one_shot: bool = False  # the factory hands out one iterator once (a generator): no resume
    ordered: bool = True  # the same items in the same order on every run: a mid-epoch resume may skip
    classes: list[str] | None = None  # from_folder / from_csv class names (index = label)
    kind: ClassVar[str] = "source"

    def describe(self) -> str:
        n = f"[{len(self.seq)}]" if self.seq is not None else ""
        return f"{self.name}{n}"

    def length(self, upstream: int | None) -> int | None:
        return len(self.seq) if self.seq is not None else None

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        if self.seq is not None:
            return IndexSource(self.describe(), self.seq)
        assert self.factory is not None
        return IterSource(self.describe(), self.factory, self.one_shot, self.ordered)


class IndexSource(Stage):
    """Yields seq[order[pos]] for pos = 0, 1, ...; `order` is None (identity), a permutation (shuffle)
    or a rank's positions of one (shard)."""

    POS_KEY = "pos"
    kind = "source"

    def __init__(self, name: str, seq: Sequence[Any],
                 order_fn: Callable[[], np.ndarray | None] | None = None) -> None:
        super().__init__(name)
        self.seq = seq
        self.order_fn = order_fn
        self._order: np.ndarray | None = None
        self._end = len(seq)
        self._pos = 0

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        self._order = self.order_fn() if self.order_fn is not None else None
        self._end = len(self.seq) if self._order is None else len(self._order)
        self._pos = 0
        if initial_state is not None:
            self._pos = state_int(initial_state, self.POS_KEY, self.name, 0, self._end)

    def next(self) -> Any:
        if self._pos >= self._end:
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

    def __init__(self, name: str, factory: Callable[[], Iterable[Any]], one_shot: bool,
                 ordered: bool = True) -> None:
        super().__init__(name)
        self.factory, self.one_shot, self.ordered = factory, one_shot, ordered
        self._it: Iterator[Any] | None = None
        self._pos = 0

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        skip = 0 if initial_state is None else state_int(initial_state, self.POS_KEY, self.name)
        if skip and not self.ordered:
            raise StateError(
                f"source '{self.name}': expected a state saved at an epoch boundary, found one {skip} "
                "items into an epoch of a source whose order changes between runs (Ray Data delivers "
                "rows as tasks finish), so no state can say which items were consumed. Fix: resume "
                "at epoch boundaries, or set ray.data.DataContext.get_current().execution_options"
                ".preserve_order = True before building the Ray Dataset."
            )
        self._it = iter(self.factory())
        self._pos = 0
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
