"""shuffle: a seeded global permutation per epoch over indexable sources, a window otherwise."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from cpuwise.data.stages._base import (
    BuildContext,
    LazyState,
    OrderStage,
    Spec,
    Stage,
    require_upstream,
    state_fields,
    state_int,
    state_list,
    state_sub,
)
from cpuwise.data.stages.source import IndexSource


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


class GlobalShuffle(OrderStage):
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


class _Window:
    """A shuffle window's buffer plus an undo log, so a snapshot of it costs O(1).

    The buffer changes by two operations: append (a sample read from upstream) and swap-pop (the
    sample handed out). Each is logged with what undoes it. A snapshot records the log's length;
    building it copies the current buffer and undoes the operations logged since, newest first.
    The log keeps only what the oldest unbuilt snapshot still needs: a prefetch stage holds the
    states of the few items it read ahead, so the log stays that short (a full copy of the buffer
    per item made window shuffle + prefetch 9x slower on iterable sources; issue 14).
    """

    TRIM_EVERY = 64  # operations between trims of the log

    def __init__(self, items: list[Any]) -> None:
        self.buf = items
        self.ops: list[tuple[int, Any, Any] | None] = []  # None: an append; (j, a, b): a swap-pop
        self.base = 0  # the version of ops[0]
        self.lock = threading.Lock()  # the prefetch thread mutates, the consumer builds snapshots
        self.live: weakref.WeakSet[_WindowSnapshot] = weakref.WeakSet()

    @property
    def version(self) -> int:
        return self.base + len(self.ops)

    def append(self, item: Any) -> None:
        with self.lock:
            self.buf.append(item)
            self.ops.append(None)
            self._trim()

    def swap_pop(self, j: int) -> Any:
        with self.lock:
            buf = self.buf
            a, b = buf[j], buf[-1]
            buf[j] = b
            buf.pop()
            self.ops.append((j, a, b))
            self._trim()
            return a

    def _trim(self) -> None:
        if len(self.ops) < self.TRIM_EVERY:
            return
        keep_from = min((s.version for s in self.live), default=self.version)
        del self.ops[: keep_from - self.base]
        self.base = keep_from

    def snapshot(self) -> _WindowSnapshot:
        with self.lock:
            snap = _WindowSnapshot(self, self.version)
            self.live.add(snap)
            return snap

    def build(self, version: int) -> list[Any]:
        with self.lock:
            out = list(self.buf)
            for op in reversed(self.ops[version - self.base :]):
                if op is None:
                    out.pop()
                else:
                    j, a, b = op
                    out.append(b)
                    out[j] = a
            return out


class _WindowSnapshot(LazyState):
    """The window's buffer as it was at `version`; built (once) when the state is read."""

    __slots__ = ("_window", "version", "_items", "__weakref__")

    def __init__(self, window: _Window, version: int) -> None:
        self._window: _Window | None = window
        self.version = version
        self._items: list[Any] | None = None

    def materialize(self) -> list[Any]:
        if self._items is None:
            assert self._window is not None
            self._items = self._window.build(self.version)
            self._window.live.discard(self)
            self._window = None
        return list(self._items)


class WindowShuffle(Stage):
    """Shuffles a stream through a buffer of `buffer_size` samples (streaming sources).

    The sample handed out is drawn at a position from a counter-based stream of random numbers
    (seed, epoch, draw), so the state is the upstream state, the window and a draw count: O(1) to
    take (the window as a lazy snapshot, see _Window), and the order is the same on any resume.
    """

    BUFFER_KEY = "buffer"
    DRAWS_KEY = "draws"
    BLOCK = 1024  # random numbers drawn per generator call
    kind = "shuffle"

    def __init__(self, upstream: Stage, seed: int, buffer_size: int, epoch_fn: Callable[[], int]) -> None:
        super().__init__(f"shuffle(seed={seed}, buffer={buffer_size})", upstream)
        self.seed, self.buffer_size, self.epoch_fn = seed, buffer_size, epoch_fn
        self._window = _Window([])
        self._draws = 0
        self._block_index = -1
        self._block = np.zeros(0, dtype=np.uint64)
        self._exhausted = False

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        assert self.upstream is not None
        self._exhausted = False
        self._block_index, self._epoch = -1, self.epoch_fn()
        if initial_state is None:
            self.upstream.reset(None)
            self._window, self._draws = _Window([]), 0
            return
        up = state_sub(initial_state, self.UPSTREAM_KEY, self.name)
        buf = state_fields(initial_state, self.name, self.BUFFER_KEY)[self.BUFFER_KEY]
        if isinstance(buf, LazyState):
            buf = buf.materialize()
        items = state_list({self.BUFFER_KEY: buf}, self.BUFFER_KEY, self.name, self.buffer_size)
        self._draws = state_int(initial_state, self.DRAWS_KEY, self.name)
        self._window = _Window(items)
        self.upstream.reset(up)

    def _fill(self) -> None:
        assert self.upstream is not None
        window = self._window
        while not self._exhausted and len(window.buf) < self.buffer_size:
            try:
                item = self.upstream.__next__()
            except StopIteration:
                self._exhausted = True
            else:
                window.append(item)

    def _draw(self, n: int) -> int:
        """A position in [0, n) from draw number `self._draws` of this (seed, epoch)."""
        block, offset = divmod(self._draws, self.BLOCK)
        if block != self._block_index:
            ss = np.random.SeedSequence([self.seed & 0xFFFFFFFF, self._epoch, 0xB0F, block])
            self._block = np.random.Generator(np.random.Philox(ss)).integers(
                0, 2**63, size=self.BLOCK, dtype=np.uint64)
            self._block_index = block
        self._draws += 1
        return int(self._block[offset]) % n

    def next(self) -> Any:
        self._fill()
        n = len(self._window.buf)
        if not n:
            raise StopIteration
        return self._window.swap_pop(self._draw(n))

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        return {self.UPSTREAM_KEY: self.upstream.get_state(), self.BUFFER_KEY: self._window.snapshot(),
                self.DRAWS_KEY: self._draws}
