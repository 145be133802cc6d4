"""The contract every pipeline stage follows (torchdata.nodes style).

A stage is an iterator over samples with three methods to implement:

    reset(initial_state)  start an epoch, or resume from a `get_state()` snapshot
    next()                the next sample, or raise StopIteration
    get_state()           a small dict: feeding it to `reset` yields exactly the samples not yet
                          delivered, in the same order

The base class times every `next()` (inclusive time, for `ds.stats()`), checks that subclasses
called `super().__init__()`, and refuses `next()` before the first `reset()`. State keys are class
constants (`UPSTREAM_KEY`), so a typo is a NameError rather than a silent mismatch.
"""

from __future__ import annotations

import time
from typing import Any

from cpuwise.errors import PipelineError


class StageStats:
    """Plain counters a stage accumulates; read by stats.py."""

    __slots__ = ("items", "next_time_s", "work_time_s", "errors", "skipped", "skipped_count")

    MAX_NAMES = 1000  # keep the skipped-name list bounded on a badly corrupt data set

    def __init__(self) -> None:
        self.items = 0
        self.next_time_s = 0.0  # inclusive time spent inside next() (includes upstream)
        self.work_time_s = 0.0  # this stage's own work (worker time for map)
        self.errors = 0
        self.skipped: list[str] = []
        self.skipped_count = 0

    def skip(self, name: str) -> None:
        self.errors += 1
        self.skipped_count += 1
        if len(self.skipped) < self.MAX_NAMES:
            self.skipped.append(name)


class Stage:
    """Base class of pipeline stages. Subclasses implement reset / next / get_state."""

    UPSTREAM_KEY = "up"
    kind = "stage"

    def __init__(self, name: str, upstream: Stage | None = None) -> None:
        self.name = name
        self.upstream = upstream
        self.stats = StageStats()
        self._initialized = True
        self._was_reset = False

    # --- the contract --------------------------------------------------------------------------
    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        """Start over (initial_state None) or resume from a get_state() snapshot."""
        if not getattr(self, "_initialized", False):
            raise PipelineError(
                f"{type(self).__name__}.__init__ did not call super().__init__(); expected the Stage "
                "base initialised, found it missing. Fix: call super().__init__(name, upstream) first."
            )
        self._was_reset = True

    def next(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement next() (the Stage contract)")

    def get_state(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement get_state() (the Stage contract)")

    # --- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Release threads / in-flight work; the default closes upstream."""
        if self.upstream is not None:
            self.upstream.close()

    def stages(self) -> list[Stage]:
        """This stage and everything upstream, source first."""
        out: list[Stage] = [] if self.upstream is None else self.upstream.stages()
        out.append(self)
        return out

    # --- the iterator protocol ---------------------------------------------------------------
    def __iter__(self) -> Stage:
        return self

    def __next__(self) -> Any:
        if not self._was_reset:
            raise PipelineError(
                f"stage '{self.name}' was iterated before reset(); expected reset(None) or "
                "reset(state) first. Fix: iterate the Dataset (iter(ds)), not a bare stage."
            )
        t0 = time.perf_counter()
        try:
            item = self.next()
        finally:
            self.stats.next_time_s += time.perf_counter() - t0
        self.stats.items += 1
        return item

    def upstream_state(self) -> dict[str, Any] | None:
        return None if self.upstream is None else self.upstream.get_state()

    def reset_upstream(self, initial_state: dict[str, Any] | None) -> None:
        """Reset the upstream stage from this stage's snapshot (or from the start when None)."""
        assert self.upstream is not None
        self.upstream.reset(None if initial_state is None else initial_state[self.UPSTREAM_KEY])
