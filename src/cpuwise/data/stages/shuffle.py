"""shuffle: a seeded global permutation per epoch over indexable sources, a window otherwise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from cpuwise.data.stages._base import (
    BuildContext,
    Spec,
    Stage,
    require_upstream,
    state_fields,
    state_list,
    state_sub,
)
from cpuwise.data.stages.source import IndexSource
from cpuwise.errors import StateError


@dataclass(frozen=True, eq=False)
class ShuffleSpec(Spec):
    """shuffle(seed, buffer_size): global when the source can be permuted, a window otherwise."""

    seed: int
    buffer_size: int
    kind: ClassVar[str] = "shuffle"

    def describe(self) -> str:
        return f"shuffle(seed={self.seed})"

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        up = require_upstream(upstream, self)
        ctx.seed, ctx.n_random = self.seed, 0  # random maps after this shuffle derive their seeds from it
        source = _permutable_source(up)
        if source is not None:
            return GlobalShuffle(up, source, self.seed, ctx.epoch)
        return WindowShuffle(up, self.seed, self.buffer_size, ctx.epoch)


def _permutable_source(stage: Stage) -> IndexSource | None:
    """The IndexSource under `stage` when only per-sample stages (maps) sit between them and no
    shuffle already permutes it: then a global permutation of the source is a shuffle of `stage`."""
    while stage.per_sample:
        assert stage.upstream is not None
        stage = stage.upstream
    if isinstance(stage, IndexSource) and stage.order_fn is None:
        return stage
    return None


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of an indexable source in `epoch`: depends only on (seed, epoch, n)."""
    rng = np.random.Generator(np.random.Philox(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, 0x5F])))
    dtype = np.int32 if n < 2**31 else np.int64
    return rng.permutation(n).astype(dtype, copy=False)


class GlobalShuffle(Stage):
    """Makes an IndexSource read in a fresh permutation each epoch; O(1) state.

    `upstream` is the source itself, or one-to-one map stages over it: permuting the inputs of a
    per-sample map permutes its outputs, without buffering decoded samples in a window.
    """

    kind = "shuffle"

    def __init__(self, upstream: Stage, source: IndexSource, seed: int, epoch_fn: Callable[[], int]) -> None:
        super().__init__(f"shuffle(seed={seed})", upstream)
        self.seed, self.epoch_fn = seed, epoch_fn
        n = len(source.seq)
        # capture values, not self: no reference cycle, so a dropped pipeline is freed at once
        source.order_fn = lambda: epoch_permutation(seed, epoch_fn(), n)

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        self.reset_upstream(initial_state)

    def next(self) -> Any:
        assert self.upstream is not None
        return self.upstream.__next__()

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        return {self.UPSTREAM_KEY: self.upstream.get_state()}


class WindowShuffle(Stage):
    """Shuffles a stream through a buffer of `buffer_size` samples (streaming sources)."""

    BUFFER_KEY = "buffer"
    RNG_KEY = "rng"
    kind = "shuffle"

    def __init__(self, upstream: Stage, seed: int, buffer_size: int, epoch_fn: Callable[[], int]) -> None:
        super().__init__(f"shuffle(seed={seed}, buffer={buffer_size})", upstream)
        self.seed, self.buffer_size, self.epoch_fn = seed, buffer_size, epoch_fn
        self._buf: list[Any] = []
        self._rng = np.random.default_rng()
        self._exhausted = False

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        assert self.upstream is not None
        self._exhausted = False
        if initial_state is None:
            self.upstream.reset(None)
            self._buf = []
            ss = np.random.SeedSequence([self.seed & 0xFFFFFFFF, self.epoch_fn(), 0xB0F])
            self._rng = np.random.Generator(np.random.Philox(ss))
        else:
            up = state_sub(initial_state, self.UPSTREAM_KEY, self.name)
            self._buf = state_list(state_fields(initial_state, self.name, self.BUFFER_KEY), self.BUFFER_KEY,
                                   self.name, self.buffer_size)
            self._rng = np.random.Generator(np.random.Philox())
            try:
                rng = state_fields(initial_state, self.name, self.RNG_KEY)[self.RNG_KEY]
                self._rng.bit_generator.state = rng
            except (TypeError, ValueError, KeyError) as exc:
                raise StateError(f"stage '{self.name}': expected rng a Philox state, found "
                                 f"{initial_state[self.RNG_KEY]!r:.80}. Fix: load a state saved from this "
                                 "pipeline.") from exc
            self.upstream.reset(up)

    def _fill(self) -> None:
        assert self.upstream is not None
        while not self._exhausted and len(self._buf) < self.buffer_size:
            try:
                self._buf.append(self.upstream.__next__())
            except StopIteration:
                self._exhausted = True

    def next(self) -> Any:
        self._fill()
        if not self._buf:
            raise StopIteration
        j = int(self._rng.integers(len(self._buf)))
        self._buf[j], self._buf[-1] = self._buf[-1], self._buf[j]
        return self._buf.pop()

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        return {self.UPSTREAM_KEY: self.upstream.get_state(), self.BUFFER_KEY: list(self._buf),
                self.RNG_KEY: self._rng.bit_generator.state}
