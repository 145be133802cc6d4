"""The autotuner's decision: a pure function from measured pipeline stats to a config.

`pick_config(stats, budget)` sizes every tuned map's worker pool and the prefetch depth:

- consumer waits (>= WAIT_GROW of the window) and cores are free -> grow each map towards the
  workers it needs, estimated as `worker seconds of work per window / consumer busy seconds`
  (x MARGIN), at least one more worker;
- consumer never waits (<= WAIT_SHRINK) -> shrink by one worker per decision, never below the
  estimate: the pipeline keeps up on less CPU;
- worker total stays within floor(cpu budget); pinned maps (workers=int) count against it;
- prefetch depth is half the worker count (2..8), capped so depth x item bytes fits half the RAM budget
  (the other half bounds the samples in flight inside map stages).

Thresholds: grain and tf.data treat the consumer waiting > a few % as input-bound; TF Profiler
bands its input-bound verdict at 5 % / 20 %. WAIT_GROW uses the 5 % band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cpuwise.data._runtime.budget import Budget

WAIT_GROW = 0.05
WAIT_SHRINK = 0.01
MARGIN = 1.15
MAX_PREFETCH = 8  # items (batches) ahead: absorbs jitter; more only holds RAM


@dataclass(frozen=True)
class MapSample:
    name: str
    tuned: bool
    workers: int
    items: int  # samples the map finished in the window
    work_s: float  # worker seconds spent on them
    item_bytes: int = 0
    max_workers: int | None = None  # the map's own cpu_budget, if it has one


@dataclass(frozen=True)
class TuneStats:
    window_s: float
    consumer_wait_s: float
    maps: tuple[MapSample, ...] = ()
    prefetch_tuned: bool = False
    prefetch_depth: int = 2
    prefetch_item_bytes: int = 0

    @property
    def wait_ratio(self) -> float:
        return min(1.0, self.consumer_wait_s / self.window_s) if self.window_s > 0 else 0.0


@dataclass(frozen=True)
class Config:
    workers: tuple[int, ...]
    prefetch: int
    max_inflight_items: tuple[int | None, ...] = ()
    why: str = ""
    reasons: tuple[str, ...] = field(default=(), compare=False)


def _need(m: MapSample, busy_s: float) -> float:
    return MARGIN * m.work_s / max(busy_s, 1e-3)


def share(want: dict[str, int], free: int) -> dict[str, int]:
    """Split `free` cores in proportion to `want` (largest remainder), at least one each."""
    total = sum(want.values())
    if total <= free:
        return dict(want)
    quota = {n: w * free / total for n, w in want.items()}
    alloc = {n: max(1, int(q + 1e-9)) for n, q in quota.items()}
    left = free - sum(alloc.values())
    for n in sorted(quota, key=lambda n: quota[n] - int(quota[n] + 1e-9), reverse=True):
        if left <= 0:
            break
        if alloc[n] < want[n]:
            alloc[n] += 1
            left -= 1
    return alloc


def pick_config(stats: TuneStats, budget: Budget) -> Config:
    """Decide worker counts and prefetch depth for the next window (pure; see module doc)."""
    cap = max(1, math.floor(budget.cpu + 1e-9))
    wait = stats.wait_ratio
    busy = max(stats.window_s - stats.consumer_wait_s, 1e-3)
    pinned = sum(m.workers for m in stats.maps if not m.tuned)
    free_total = max(0, cap - pinned)
    tuned = [m for m in stats.maps if m.tuned]
    targets = [m.workers for m in stats.maps]
    reasons: list[str] = []
    if tuned:
        needs = {m.name: _need(m, busy) for m in tuned}
        want: dict[str, int] = {}
        for m in tuned:
            need = needs[m.name]
            if wait >= WAIT_GROW:
                w = max(m.workers + 1, math.ceil(need))
                why = f"consumer waited {wait:.0%}; {m.name} needs ~{need:.1f} workers"
            elif wait <= WAIT_SHRINK and m.workers > 1 and math.ceil(need) < m.workers:
                w = m.workers - 1
                why = f"consumer waited {wait:.1%}; {m.name} needs ~{need:.1f} workers, so one fewer"
            else:
                w = m.workers
                why = f"consumer waited {wait:.1%}; keep {m.name}"
            if m.max_workers is not None and w > m.max_workers:
                w = m.max_workers
                why += f" (capped by its cpu_budget at {m.max_workers})"
            want[m.name] = max(1, w)
            reasons.append(why)
        if sum(want.values()) > free_total:
            want = share(want, free_total)
            reasons.append(f"limited to the CPU budget ({budget.cpu:g} cores, {pinned} pinned)")
        targets = [want[m.name] if m.tuned else m.workers for m in stats.maps]
    inflight: list[int | None] = []
    half_ram = budget.ram_bytes // 2
    for m in stats.maps:
        inflight.append(max(1, half_ram // m.item_bytes) if m.item_bytes else None)
    depth = stats.prefetch_depth
    if stats.prefetch_tuned:
        depth = min(MAX_PREFETCH, max(2, math.ceil(sum(targets) / 2) if targets else 2))
        if stats.prefetch_item_bytes:
            depth = max(1, min(depth, half_ram // stats.prefetch_item_bytes))
    changes = [f"{m.name} workers {m.workers}->{t}" for m, t in zip(stats.maps, targets, strict=True)
               if t != m.workers]
    if depth != stats.prefetch_depth:
        changes.append(f"prefetch {stats.prefetch_depth}->{depth}")
    why = "; ".join(reasons) + (" => " + ", ".join(changes) if changes else " => no change")
    return Config(tuple(targets), depth, tuple(inflight), why, tuple(reasons))
