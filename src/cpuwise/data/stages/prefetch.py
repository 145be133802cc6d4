"""prefetch: a background thread keeps up to `depth` items ready ahead of the consumer.

Each buffered item carries the upstream state right after it was produced, so `get_state()`
describes exactly what the consumer has received, not what the thread has read ahead. An error in
the thread is delivered in order (after the items produced before it) and stops the thread; the
next call after the error starts it again, so a caught SampleError does not end the epoch.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from cpuwise._schema import StageEntry
from cpuwise.data._tree import nbytes
from cpuwise.data.stages._base import BuildContext, Spec, Stage, require_upstream, stage_entry

log = logging.getLogger("cpuwise.data")

_END = object()
_ERR = object()


@dataclass(frozen=True, eq=False)
class PrefetchSpec(Spec):
    """prefetch(depth, cpu_budget)."""

    depth: int | None  # None: autotuned (RAM-capped)
    cpu_budget: float | None  # the pipeline's budget from here on (Dataset.prefetch records it)
    kind: ClassVar[str] = "prefetch"

    def describe(self) -> str:
        return "prefetch"

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        return PrefetchStage(require_upstream(upstream, self), self.depth)


class PrefetchStage(Stage):
    """A background thread keeping up to `depth` items (and the state after each) ready."""

    kind = "prefetch"
    runs_ahead = True

    def __init__(self, upstream: Stage, depth: int | None) -> None:
        super().__init__(f"prefetch({'auto' if depth is None else depth})", upstream)
        self.tuned = depth is None
        self.depth = 2 if depth is None else depth
        self._cond = threading.Condition()
        self._buf: deque[tuple[Any, Any, dict[str, Any]]] = deque()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._done = False
        self._state: dict[str, Any] = {}
        self.wait_s = 0.0
        self.occupancy_sum = 0
        self.item_bytes = 0

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        assert self.upstream is not None
        self._halt()
        self.reset_upstream(initial_state)
        self._state = {self.UPSTREAM_KEY: self.upstream.get_state()}
        self._done = False

    @staticmethod
    def _run(ref: weakref.ref[PrefetchStage]) -> None:
        """The thread body. It holds the stage only through a weak reference while it waits, so
        a pipeline the user dropped mid-epoch can be garbage-collected (and its workers stopped)."""
        while True:
            me = ref()
            if me is None or me._stop:
                return
            cond = me._cond
            if len(me._buf) >= me.depth:
                del me
                with cond:
                    cond.wait(0.2)
                continue
            assert me.upstream is not None
            kind: Any = None
            try:
                item = me.upstream.__next__()
                kind = item
            except StopIteration:
                kind, item = _END, None
            except BaseException as exc:  # delivered to the consumer in order
                kind, item = _ERR, exc
            state = me.upstream.get_state()
            with cond:
                me._buf.append((kind, item, state))
                cond.notify_all()
            del me, item, state
            if kind is _END or kind is _ERR:
                return
            kind = None

    def _halt(self) -> None:
        t = self._thread
        if t is not None:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            if t is not threading.current_thread():
                t.join(30.0)
            if t.is_alive() and t is not threading.current_thread():
                log.warning("cpuwise.data: prefetch thread still busy in an upstream stage after 30 s")
        self._thread = None
        self._stop = False
        self._buf.clear()

    def next(self) -> Any:
        with self._cond:
            if self._done:
                raise StopIteration
            if self._thread is None or (not self._buf and not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, args=(weakref.ref(self),),
                                                name="cpuwise-prefetch", daemon=True)
                self._thread.start()
            self.occupancy_sum += len(self._buf)
            if not self._buf:
                t0 = time.perf_counter()
                while not self._buf:
                    self._cond.wait(0.5)
                self.wait_s += time.perf_counter() - t0
            kind, item, state = self._buf.popleft()
            self._cond.notify_all()
        self._state = {self.UPSTREAM_KEY: state}
        if kind is _END:
            self._done = True
            self._thread = None
            raise StopIteration
        if kind is _ERR:
            self._thread = None
            raise item
        if self.item_bytes == 0:
            self.item_bytes = nbytes(item)
        return item

    def get_state(self) -> dict[str, Any]:
        return dict(self._state)

    def close(self) -> None:
        self._halt()
        super().close()

    def stats_entries(self, wall: float) -> list[StageEntry]:
        """Its time is the consumer's wait on the buffer (the thread's work is upstream's)."""
        return [stage_entry(self.name, self.kind, self.stats.items, self.wait_s, wall, self.wait_s, None,
                            self.stats)]
