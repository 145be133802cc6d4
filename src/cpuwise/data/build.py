"""Turn a chain of specs into live stages (one set per iterator; pools are shared)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from cpuwise.data import specs as S
from cpuwise.data._engine.backends import start_pool
from cpuwise.data._engine.chunk import MapFn
from cpuwise.data.batch import BatchStage
from cpuwise.data.budget import Budget
from cpuwise.data.cache import CacheStage, DiskStore, MemoryStore
from cpuwise.data.filter import FilterStage
from cpuwise.data.map import MapStage
from cpuwise.data.prefetch import PrefetchStage
from cpuwise.data.repeat import EpochClock, RepeatStage
from cpuwise.data.shuffle import GlobalShuffle, WindowShuffle
from cpuwise.data.sources import IndexSource, IterSource
from cpuwise.data.stage import Stage

log = logging.getLogger("cpuwise.data")


@dataclass
class Built:
    top: Stage
    clock: EpochClock
    maps: list[MapStage] = field(default_factory=list)
    prefetches: list[PrefetchStage] = field(default_factory=list)


def fingerprint(chain: list[S.Spec]) -> list[str]:
    return [s.describe() for s in chain]


def build(chain: list[S.Spec], budget: Budget) -> Built:
    items = S.group_maps(chain)
    # Epoch clocks: stages below a repeat() see the repeat's pass-extended epoch.
    root = EpochClock()
    clocks: list[EpochClock] = [root] * len(items)
    clock = root
    for i in range(len(items) - 1, -1, -1):
        clocks[i] = clock
        it = items[i]
        if isinstance(it, S.RepeatSpec):
            clock = EpochClock(clock, it.n)
            clocks[i] = clock  # the repeat stage bumps the pass of the clock it hands upstream
    groups = [it for it in items if isinstance(it, list)]
    n_init = dict(zip((id(g[0]) for g in groups), S.initial_workers(groups, budget.cpu), strict=True))
    out = Built(top=None, clock=root)  # type: ignore[arg-type]
    stage: Stage | None = None
    seed, n_random = 0, 0
    for it, ck in zip(items, clocks, strict=True):
        if isinstance(it, S.SourceSpec):
            if it.seq is not None:
                stage = IndexSource(it.describe(), it.seq)
            else:
                assert it.factory is not None
                stage = IterSource(it.describe(), it.factory, it.one_shot)
            continue
        assert stage is not None
        if isinstance(it, S.ShuffleSpec):
            seed, n_random = it.seed, 0
            source = _permutable_source(stage)
            if source is not None:
                stage = GlobalShuffle(stage, source, it.seed, ck)
            else:
                stage = WindowShuffle(stage, it.seed, it.buffer_size, ck)
        elif isinstance(it, list):
            fns = []
            for spec in it:
                random = S.needs_rng(spec.fn)
                fns.append(MapFn(spec.fn, spec.name, random, spec.on_error, (seed + n_random) & 0xFFFFFFFF))
                n_random += int(random)
            m = MapStage(stage, fns, _pool_factory(it, fns, n_init[id(it[0])]), ck,
                         tuned=not isinstance(it[0].workers, int))
            if it[0].cpu_budget is not None:
                m.max_workers = max(1, math.floor(it[0].cpu_budget + 1e-9))
            out.maps.append(m)
            stage = m
        elif isinstance(it, S.FilterSpec):
            stage = FilterStage(stage, it.pred, it.on_error)
        elif isinstance(it, S.BatchSpec):
            stage = BatchStage(stage, it.size, it.drop_last, it.collate)
        elif isinstance(it, S.PrefetchSpec):
            p = PrefetchStage(stage, it.depth)
            out.prefetches.append(p)
            stage = p
        elif isinstance(it, S.CacheSpec):
            if it.store is None:
                upstream_fp = "|".join(fingerprint(chain[: chain.index(it)]))
                it.store = MemoryStore() if it.path is None else DiskStore(it.path, upstream_fp)
            stage = CacheStage(stage, it.store, it.describe())
        elif isinstance(it, S.RepeatSpec):
            stage = RepeatStage(stage, it.n, ck)
        else:  # pragma: no cover - every spec kind is handled above
            raise TypeError(it)
    assert stage is not None
    out.top = stage
    return out


def _permutable_source(stage: Stage) -> IndexSource | None:
    """The IndexSource under `stage` when only one-to-one maps sit between them (and no shuffle
    already permutes it): then a global permutation of the source is a shuffle of `stage`."""
    while isinstance(stage, MapStage):
        assert stage.upstream is not None
        stage = stage.upstream
    if isinstance(stage, IndexSource) and stage.order_fn is None:
        return stage
    return None


def _pool_factory(group: list[S.MapSpec], fns: list[MapFn], n: int) -> Any:
    first = group[0]
    box = first.pool_box(group)

    def make() -> Any:
        if box:  # warm workers from an earlier iterator (their size is the autotuner's latest)
            return box[0]
        pool = start_pool(first.backend, fns, n, "+".join(s.name for s in group))
        box.append(pool)
        return pool

    return make
