"""batch: group samples and collate them into stacked numpy arrays."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from cpuwise.data.stages._base import BuildContext, Spec, Stage, require_upstream, state_list
from cpuwise.errors import PipelineError


@dataclass(frozen=True, eq=False)
class BatchSpec(Spec):
    """batch(size, drop_last, collate)."""

    size: int
    drop_last: bool
    collate: Callable[[list[Any]], Any] | None  # None: `collate` below
    kind: ClassVar[str] = "batch"

    def describe(self) -> str:
        return f"batch({self.size}{', drop_last' if self.drop_last else ''})"

    def length(self, upstream: int | None) -> int | None:
        if upstream is None:
            return None
        return upstream // self.size if self.drop_last else -(-upstream // self.size)

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        return BatchStage(require_upstream(upstream, self), self.size, self.drop_last, self.collate)


def collate(samples: list[Any]) -> Any:
    """Stack a list of samples field by field: tuples/lists/dicts recurse, arrays are stacked,
    Python ints become int64 arrays, floats float64, bools bool; anything else stays a list."""
    first = samples[0]
    if isinstance(first, tuple):
        return tuple(collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, list):
        return [collate([s[i] for s in samples]) for i in range(len(first))]
    if isinstance(first, dict):
        return {k: collate([s[k] for s in samples]) for k in first}
    if isinstance(first, np.ndarray):
        try:
            return np.stack(samples)
        except ValueError as exc:
            shapes = sorted({tuple(s.shape) for s in samples})[:3]
            raise PipelineError(
                f"batch: expected arrays of one shape to stack, found shapes {shapes}. Fix: crop or "
                "resize every sample to one size in a map() before batch()."
            ) from exc
    if isinstance(first, (bool, np.bool_)):
        return np.asarray(samples, dtype=bool)
    if isinstance(first, (int, np.integer)):
        return np.asarray(samples, dtype=np.int64 if isinstance(first, int) else None)
    if isinstance(first, (float, np.floating)):
        return np.asarray(samples)
    return list(samples)


class BatchStage(Stage):
    """Groups `size` samples; a batch cut short by an upstream error is finished on the next call."""

    PARTIAL_KEY = "partial"
    kind = "batch"

    def __init__(self, upstream: Stage, size: int, drop_last: bool,
                 collate_fn: Callable[[list[Any]], Any] | None) -> None:
        super().__init__(f"batch({size}{', drop_last' if drop_last else ''})", upstream)
        self.size, self.drop_last = size, drop_last
        self.collate_fn = collate if collate_fn is None else collate_fn
        # samples pulled into the batch being built when upstream raised (e.g. a SampleError the
        # consumer catches): the next call resumes from them instead of losing them
        self._partial: list[Any] = []

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        self.reset_upstream(initial_state)
        if initial_state is None:
            self._partial = []
        else:  # a partial batch holds fewer than `size` samples
            self._partial = state_list(initial_state, self.PARTIAL_KEY, self.name, self.size - 1)

    def next(self) -> Any:
        assert self.upstream is not None
        items = self._partial
        self._partial = []
        while len(items) < self.size:
            try:
                items.append(self.upstream.__next__())
            except StopIteration:
                break
            except BaseException:
                self._partial = items
                raise
        if not items or (self.drop_last and len(items) < self.size):
            raise StopIteration
        t0 = time.perf_counter()
        out = self.collate_fn(items)
        self.stats.work_time_s += time.perf_counter() - t0
        return out

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        state: dict[str, Any] = {self.UPSTREAM_KEY: self.upstream.get_state()}
        if self._partial:
            state[self.PARTIAL_KEY] = list(self._partial)
        return state
