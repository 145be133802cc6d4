"""map: an ordered parallel map over chunks of samples, with exact resumable state.

Samples are pulled from upstream in chunks (sized so one chunk is ~20 ms of work, which amortises
the IPC round trip), run by a pool (process, thread or inline), and delivered strictly in input
order. The state after delivering a sample is (upstream state at the start of its chunk, position
in the chunk, epoch index of the chunk start): restoring it re-pulls that chunk's inputs and skips
the delivered ones, so a resume yields exactly the samples not yet delivered, whatever was in
flight. Worker count changes (autotune) only apply between chunks and never reorder anything.

Consecutive map() calls fuse into one stage and one worker group (one IPC hop for decode + crop +
flip) unless a later call pins its own workers/backend/budget. The group's pool belongs to the
runtime (`ctx.shared()` of the group's first spec), so every iterator and every Dataset derived from
the chain reuse the same warm workers.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cpuwise._schema import StageEntry
from cpuwise.data._engine.backends import start_pool
from cpuwise.data._engine.chunk import Failed, MapFn, Skipped
from cpuwise.data._engine.pool import HANG_TIMEOUT_S, Pool
from cpuwise.data._tree import nbytes
from cpuwise.data.stages._base import (
    BuildContext,
    Spec,
    Stage,
    StageStats,
    require_upstream,
    stage_entry,
    state_int,
    state_sub,
)
from cpuwise.data.stages._lockstep import Dropped, KeepDropped
from cpuwise.data.transform import needs_rng
from cpuwise.errors import SampleError, StateError, WorkerError

log = logging.getLogger("cpuwise.data")

TARGET_CHUNK_S = 0.02  # worker time per chunk: long enough to hide the ~0.1-0.2 ms IPC round trip
MAX_CHUNK = 512
TASKS_PER_WORKER = 2  # one running, one queued: a worker never waits for the parent


@dataclass(frozen=True, eq=False)
class MapSpec(Spec):
    """map(fn, ...): one map() call; consecutive calls fuse into one stage (see fuses_into)."""

    fn: Any
    on_error: str  # "raise" | "skip"
    workers: int | str  # a pinned count, or "auto"
    backend: str  # "auto" | "process" | "thread" | "inline"
    cpu_budget: float | None
    name: str
    hang_timeout: float | None = None  # None: the engine's default (HANG_TIMEOUT_S)
    kind: ClassVar[str] = "map"

    def describe(self) -> str:
        return f"map({self.name})"

    def length(self, upstream: int | None) -> int | None:
        return None if self.on_error == "skip" else upstream

    def fuses_into(self, first: MapSpec) -> bool:
        """Run in the same workers as the group that `first` starts: when this map leaves every
        setting at its default, or repeats the group's settings exactly."""
        if (self.workers == "auto" and self.backend == "auto" and self.cpu_budget is None
                and self.hang_timeout is None):
            return True
        mine = (self.workers, self.backend, self.cpu_budget, self.hang_timeout)
        return mine == (first.workers, first.backend, first.cpu_budget, first.hang_timeout)

    def fuses(self, nxt: Spec) -> bool:
        return isinstance(nxt, MapSpec) and nxt.fuses_into(self)

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        group = [s for s in ctx.group if isinstance(s, MapSpec)]
        fns = []
        for spec in group:  # each random map draws from its own seed: the shuffle's, plus its rank
            random = needs_rng(spec.fn)
            seed = (ctx.seed + ctx.n_random) & 0xFFFFFFFF
            fn = KeepDropped(spec.fn) if ctx.in_lockstep else spec.fn  # markers pass through unrun
            fns.append(MapFn(fn, spec.name, random, spec.on_error, seed))
            ctx.n_random += int(random)
        groups = map_groups(ctx.groups)
        n = initial_workers(groups, ctx.cpu_budget)[next(i for i, g in enumerate(groups) if g[0] is self)]
        shared, key, backend = ctx.shared(), tuple(id(s) for s in group), self.backend
        name = "+".join(s.name for s in group)
        hang = HANG_TIMEOUT_S if self.hang_timeout is None else self.hang_timeout

        def pool() -> Pool:  # warm workers from an earlier iterator (their size is the autotuner's latest)
            return shared.pool(key, lambda: start_pool(backend, fns, n, name, hang))

        stage = MapStage(require_upstream(upstream, self), fns, pool, ctx.epoch,
                         tuned=not isinstance(self.workers, int), start_workers=n, backend=backend,
                         lockstep=ctx.in_lockstep)
        if self.cpu_budget is not None:
            stage.max_workers = max(1, math.floor(self.cpu_budget + 1e-9))
        return stage


def map_groups(groups: Sequence[Sequence[Spec]]) -> list[list[MapSpec]]:
    """The fused map groups among a chain's groups, in order."""
    return [[s for s in g if isinstance(s, MapSpec)] for g in groups if isinstance(g[0], MapSpec)]


def initial_workers(groups: Sequence[Sequence[MapSpec]], cpu: float) -> list[int]:
    """Pinned groups keep their count; tuned groups share the rest of the budget evenly."""
    cap = max(1, math.floor(cpu + 1e-9))
    pinned = sum(int(g[0].workers) for g in groups if isinstance(g[0].workers, int))
    tuned = [g for g in groups if not isinstance(g[0].workers, int)]
    share = max(1, (cap - pinned) // max(1, len(tuned)))
    out = []
    for g in groups:
        w = g[0].workers
        budget = g[0].cpu_budget
        n = int(w) if isinstance(w, int) else share
        if budget is not None and not isinstance(w, int):
            n = max(1, min(n, math.floor(budget + 1e-9)))
        out.append(n)
    return out


@dataclass
class _Chunk:
    task_id: int
    start: int  # epoch index of the first input
    n: int  # inputs in the chunk
    up_state: dict[str, Any] | None  # upstream state before its first input
    outputs: list[Any] | None = None
    pos: int = 0


@dataclass
class GroupStats:
    """Per-function counters of a fused map group (one entry per map() call in stats)."""

    items: list[int] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    errors: list[StageStats] = field(default_factory=list)
    cpu_s: float = 0.0
    wait_s: float = 0.0  # time next() blocked on workers


class MapStage(Stage):
    """A fused group of map functions run by a pool, delivered in input order."""

    SKIP_KEY = "skip"
    INDEX_KEY = "index"
    kind = "map"
    runs_ahead = True
    per_sample = True

    def __init__(self, upstream: Stage, fns: list[MapFn], pool_fn: Callable[[], Pool],
                 epoch_fn: Callable[[], int], tuned: bool, start_workers: int = 1,
                 backend: str = "auto", lockstep: bool = False) -> None:
        super().__init__(" + ".join(f"map({f.name})" for f in fns), upstream)
        self.fns, self.pool_fn, self.epoch_fn, self.tuned = fns, pool_fn, epoch_fn, tuned
        self.lockstep = lockstep  # after a shard: a skipped sample leaves a Dropped marker
        self.start_workers = start_workers  # the pool's size when it starts
        self.requested_backend = backend
        self.pool: Pool | None = None
        self.target_workers: int | None = None  # set by the autotuner, applied between chunks
        self.max_workers: int | None = None  # from map(cpu_budget=...)
        self.chunk_size = 1
        self.item_bytes = 0
        self.max_inflight_items: int | None = None  # RAM bound set by the autotuner
        self.gstats = GroupStats([0] * len(fns), [0.0] * len(fns), [StageStats() for _ in fns])
        self._order: deque[_Chunk] = deque()
        self._ready: dict[int, list[Any]] = {}
        self._cur: _Chunk | None = None
        self._next_index = 0
        self._exhausted = False
        self._up_error: BaseException | None = None
        self._state: dict[str, Any] = {}

    # --- state ----------------------------------------------------------------------------------
    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        assert self.upstream is not None
        if self.pool is not None:
            self.pool.cancel([c.task_id for c in self._order])
        self._order.clear()
        self._ready.clear()
        self._cur, self._exhausted, self._up_error = None, False, None
        self.epoch = self.epoch_fn()
        if initial_state is None:
            self.upstream.reset(None)
            self._next_index = 0
            self._state = {self.UPSTREAM_KEY: self.upstream.get_state(), self.SKIP_KEY: 0,
                           self.INDEX_KEY: 0}
            return
        up = state_sub(initial_state, self.UPSTREAM_KEY, self.name)
        skip = state_int(initial_state, self.SKIP_KEY, self.name, 0, MAX_CHUNK)  # within one chunk
        index = state_int(initial_state, self.INDEX_KEY, self.name)
        self.upstream.reset(up)
        for _ in range(int(skip)):
            try:
                self.upstream.__next__()
            except StopIteration:
                raise StateError(f"map '{self.name}': the state skips {skip} inputs but upstream "
                                 "ended before. Fix: load a state saved from this pipeline.") from None
        self._next_index = int(index) + int(skip)
        self._state = {self.UPSTREAM_KEY: up, self.SKIP_KEY: int(skip), self.INDEX_KEY: int(index)}

    def get_state(self) -> dict[str, Any]:
        return dict(self._state)

    # --- pulling and submitting -----------------------------------------------------------------
    def _ensure_pool(self) -> Pool:
        if self.pool is None:
            self.pool = self.pool_fn()
        if self.target_workers is not None and self.target_workers != self.pool.size:
            self.pool.resize(self.target_workers)
        return self.pool

    def _limit(self, pool: Pool) -> int:
        n = max(1, pool.size) * TASKS_PER_WORKER
        if self.max_inflight_items is not None:
            n = max(1, min(n, self.max_inflight_items // max(1, self.chunk_size)))
        return n

    def _fill(self) -> None:
        assert self.upstream is not None
        pool = self._ensure_pool()
        while not self._exhausted and self._up_error is None and len(self._order) < self._limit(pool):
            up_state = self.upstream.get_state()
            items: list[Any] = []
            try:
                while len(items) < self.chunk_size:
                    items.append(self.upstream.__next__())
            except StopIteration:
                self._exhausted = True
            except Exception as exc:  # deliver what came before, then raise in order
                self._up_error = exc
            if not items:
                break
            chunk = _Chunk(pool.new_id(), self._next_index, len(items), up_state)
            self._next_index += len(items)
            self._order.append(chunk)
            pool.submit(chunk.task_id, items, chunk.start, self.epoch)

    def _collect(self, timeout: float) -> None:
        pool = self.pool
        assert pool is not None  # _fill() started it
        pool.poll(timeout)
        for c in self._order:
            if c.task_id in self._ready:
                continue
            done = pool.take(c.task_id)
            if done is None:
                continue
            if len(done.outputs) != c.n:  # delivering by position needs exactly one result per input
                raise WorkerError(
                    f"map '{self.name}': the pool returned {len(done.outputs)} results for a chunk of "
                    f"{c.n} samples (epoch index {c.start}); expected one per sample. This is a bug in "
                    "cpuwise.data: please report it with the map function's pool backend."
                )
            self._ready[done.task_id] = done.outputs
            n = len(done.outputs)
            for j, t in enumerate(done.times):
                self.gstats.time_s[j] += t
            self.gstats.cpu_s += done.cpu_s
            self.gstats.items[0] += n
            per_item = sum(done.times) / max(1, n)
            if per_item > 0:
                self.chunk_size = max(1, min(MAX_CHUNK, int(TARGET_CHUNK_S / per_item)))

    # --- delivering -----------------------------------------------------------------------------
    def next(self) -> Any:
        while True:
            cur = self._cur
            if cur is not None and cur.outputs is not None and cur.pos < cur.n:
                out = cur.outputs[cur.pos]
                cur.pos += 1
                self._state = {self.UPSTREAM_KEY: cur.up_state, self.SKIP_KEY: cur.pos,
                               self.INDEX_KEY: cur.start}
                if isinstance(out, Skipped):
                    self.gstats.errors[out.stage].skip(out.name)
                    log.debug("cpuwise.data: skipped %r in %s: %s", out.name, self.fns[out.stage].name,
                              out.why)
                    if self.lockstep:
                        return Dropped(out.name)
                    continue
                if isinstance(out, Failed):
                    self.gstats.errors[out.stage].errors += 1
                    stage = f"map({self.fns[out.stage].name})"
                    raise SampleError(
                        f"stage '{stage}' failed on sample {out.name!r} (index {cur.start + cur.pos - 1} of "
                        f"epoch {self.epoch}): {out.error}. Fix: repair or remove the sample, or pass "
                        f"on_error='skip' to count and skip such samples.\n"
                        f"Worker traceback:\n{out.tb}", sample=out.name, stage=stage,
                    ) from out.exc
                return out
            self._cur = None
            self._fill()
            if not self._order:
                if self._up_error is not None:
                    err, self._up_error = self._up_error, None
                    raise err
                raise StopIteration
            head = self._order[0]
            if head.task_id not in self._ready:
                self._collect(0.0)
            if head.task_id not in self._ready:
                t0 = time.perf_counter()
                while head.task_id not in self._ready:
                    self._collect(0.05)
                    self._fill()
                self.gstats.wait_s += time.perf_counter() - t0
            self._order.popleft()
            head.outputs = self._ready.pop(head.task_id)
            self._cur = head
            if head.n and self.item_bytes == 0:
                self.item_bytes = nbytes(head.outputs[0])

    def close(self) -> None:
        if self.pool is not None:
            self.pool.drain([c.task_id for c in self._order])
        self._order.clear()
        self._ready.clear()
        self._cur = None
        super().close()

    def workers(self) -> int:
        """The pool's worker count (0 before it starts)."""
        return 0 if self.pool is None else int(self.pool.size)

    @property
    def backend(self) -> str:
        """The pool's backend; before it starts, the requested one ("auto" tries processes first)."""
        if self.pool is not None:
            return self.pool.backend
        return "process" if self.requested_backend == "auto" else self.requested_backend

    def stats_entries(self, wall: float) -> list[StageEntry]:
        """One row per map() call of the group; time_s is worker seconds."""
        g = self.gstats
        return [stage_entry(f"map({f.name})", "map", g.items[0], g.time_s[j], wall, g.wait_s, self.workers(),
                            g.errors[j]) for j, f in enumerate(self.fns)]
