"""The user-facing iterator: runs the stages, times the consumer, autotunes, reports.

Per delivered item it measures the time spent inside `__next__` (the consumer's wait), reports it
to `cpuwise doctor` when one is listening (`cpuwise._channel`), and every TUNE_INTERVAL_S
asks the pure autotuner for a new config, which the stages apply between chunks.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from cpuwise import _channel
from cpuwise._schema import Decision, PipelineConfig, PipelineStats
from cpuwise.data._runtime import autotune, elastic, stats
from cpuwise.data._runtime.budget import Budget
from cpuwise.data._runtime.build import Built, build, fingerprint
from cpuwise.data.stages._base import Spec, materialized
from cpuwise.data.stages.map import MapStage
from cpuwise.data.stages.prefetch import PrefetchStage
from cpuwise.errors import PipelineError, StateError

log = logging.getLogger("cpuwise.data")

TUNE_FIRST_S = 0.5  # first decision after half a second: converge fast
TUNE_INTERVAL_S = 1.5
EMIT_INTERVAL_S = 2.0
STATE_VERSION = 2  # 2: window shuffles keep a draw count; sharded pipelines add a "shard" record
MAX_DECISIONS = 200


def _first_difference(expected: list[str], found: Any) -> str:
    """What differs first between two fingerprints, named: the data set, the seed, or a stage."""
    if not isinstance(found, list):
        return ""
    for i, (want, got) in enumerate(zip(expected, found, strict=False)):
        if want != got:
            what = ("the data set (its source or size)" if i == 0 else
                    "the shuffle seed" if want.startswith("shuffle(") and got.startswith("shuffle(") else
                    f"stage {i + 1}")
            return f": {what} differs (this pipeline has {want}, the state {got})"
    return f": it has {len(found)} stages, this pipeline {len(expected)}"


def check_top_level(state: Any, expected: list[str]) -> None:
    """Raise StateError unless `state` is a state_dict() of the pipeline whose fingerprint is
    `expected`: the right version, the same stages, an epoch >= 0 and the stages' states or None."""
    if not isinstance(state, dict) or not {"version", "pipeline", "epoch", "stages"} <= set(state):
        keys = sorted(map(str, state)) if isinstance(state, dict) else []
        raise StateError(f"load_state_dict: expected a dict from ds.state_dict() (keys version, pipeline, "
                         f"epoch, stages), found {type(state).__name__} with keys {keys}. "
                         "Fix: pass what state_dict() returned.")
    if state["version"] != STATE_VERSION:
        raise StateError(f"load_state_dict: expected state version {STATE_VERSION}, found "
                         f"{state['version']!r}. Fix: save and load with the same cpuwise version.")
    found = state["pipeline"]
    if not isinstance(found, list) or found != expected:
        raise StateError(
            "load_state_dict: the state was saved from a different pipeline"
            f"{_first_difference(expected, found)}.\n"
            f"  expected stages: {expected}\n  found stages:    {found!r}\n"
            "Fix: build the same pipeline (same stages, order, sizes and functions) before loading."
        )
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise StateError(f"load_state_dict: expected epoch an int >= 0, found epoch={epoch!r}. "
                         "Fix: load a state that ds.state_dict() saved (the checkpoint may be damaged).")
    if state["stages"] is not None and not isinstance(state["stages"], dict):
        raise StateError(f"load_state_dict: expected stages a dict (or None at an epoch's start), found "
                         f"{type(state['stages']).__name__}. Fix: load a state that ds.state_dict() saved.")


class PipelineIterator:
    """One epoch over a Dataset's stages; `iter(ds)` makes one.

    Args:
        chain: the Dataset's specs, source first.
        state: a state_dict() to resume from, or None to start the epoch.
        decisions: the Dataset's autotune decisions; this iterator appends its own.
    """

    def __init__(self, chain: Sequence[Spec], epoch: int, state: dict[str, Any] | None, budget: Budget,
                 decisions: list[Decision]) -> None:
        # No reference back to the Dataset (it points here): without cycles a dropped pipeline is
        # freed, and its workers stopped, as soon as the last reference goes.
        self.epoch, self.budget = epoch, budget
        self.decisions = decisions
        self.chain = list(chain)
        self.built: Built = build(self.chain, budget)
        self.top = self.built.top
        stages = self.top.stages()
        self.maps = [s for s in stages if isinstance(s, MapStage)]  # what the autotuner sizes
        self.prefetches = [s for s in stages if isinstance(s, PrefetchStage)]
        self.built.clock.value = epoch
        self._finished = False
        self._closed = False
        self._superseded = False
        if state is None:
            self.top.reset(None)
        else:
            self._resume(state["stages"])
        self.items_out = 0
        self.wait_s = 0.0
        self.restart_clock()
        if not self.decisions:
            self._decide_initial()

    def _resume(self, stages: dict[str, Any] | None) -> None:
        """Reset every stage from a loaded state; any malformed field is a StateError (the state is
        untrusted input: a checkpoint file), and nothing is left running when it is refused."""
        try:
            self.top.reset(stages)
        except StateError:
            self.close()
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            self.close()
            raise StateError(
                f"load_state_dict: expected the stage states of this pipeline, found a state its stages "
                f"cannot read ({type(exc).__name__}: {exc}). Fix: load a state that ds.state_dict() saved "
                "from this same pipeline (the checkpoint may be damaged)."
            ) from exc

    def restart_clock(self) -> None:
        """Start the timers now: an iterator prepared by load_state_dict() starts timing when used."""
        self.t_start = time.perf_counter()
        self._next_tune = self.t_start + TUNE_FIRST_S
        self._next_emit = self.t_start + EMIT_INTERVAL_S
        self._window = (self.t_start, 0.0, [(0, 0.0) for _ in self.maps])

    # --- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> PipelineIterator:
        return self

    def __next__(self) -> Any:
        if self._superseded:
            raise PipelineError(
                "this iterator was closed by a newer iter(ds) on the same Dataset: expected one live "
                "iterator per Dataset, found two. Fix: finish or drop the first iterator, or derive a "
                "second pipeline (e.g. ds.batch(...)) for a second concurrent stream."
            )
        if self._finished or self._closed:
            raise StopIteration
        t0 = time.perf_counter()
        try:
            item = self.top.__next__()
        except StopIteration:
            t1 = time.perf_counter()
            self.wait_s += t1 - t0
            self._finished = True
            if _channel.ACTIVE:
                _channel.note_next(t0, t1, stream=id(self), end=True)
                _channel.emit("pipeline_stats", self.stats())
            raise
        t1 = time.perf_counter()
        self.wait_s += t1 - t0
        self.items_out += 1
        if _channel.ACTIVE:
            _channel.note_next(t0, t1, stream=id(self), item=item)
            if t1 >= self._next_emit:
                self._next_emit = t1 + EMIT_INTERVAL_S
                _channel.emit("pipeline_stats", self.stats())
        if t1 >= self._next_tune:
            self._tune(t1)
        return item

    @property
    def running(self) -> bool:
        """True until the epoch ends or the iterator is closed."""
        return not self._finished and not self._closed

    def supersede(self) -> None:
        """Close this iterator because a newer iter(ds) replaced it; its next() then says so."""
        self.close()
        self._superseded = True

    def close(self) -> None:
        """Stop background threads and cancel in-flight work (the warm pools stay with the ds)."""
        if self._closed:
            return
        self._closed = True
        self.top.close()

    def __del__(self) -> None:
        if sys.is_finalizing():  # daemon threads are frozen now; the atexit hook stopped the pools
            return
        try:
            self.close()
        except Exception:
            pass

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the consumer is, as plain data (every lazy part built)."""
        return materialized(self.state_snapshot())

    def state_snapshot(self) -> dict[str, Any]:
        """`state_dict()` with costly parts left lazy (O(1) to take; see stages._base.LazyState)."""
        stages = self.top.get_state()
        state = {"version": STATE_VERSION, "pipeline": fingerprint(self.chain), "epoch": self.epoch,
                 "stages": stages}
        record = elastic.shard_record(self.chain, stages)
        if record is not None:
            state[elastic.SHARD_KEY] = record
        return state

    # --- autotune -------------------------------------------------------------------------------
    def _decide_initial(self) -> None:
        if not self.maps and not self.prefetches:
            return
        cfg = self._config()
        why = (f"start: {cfg.workers} worker(s) for {len(self.maps)} map group(s) within a "
               f"CPU budget of {self.budget.cpu:g} cores")
        self._record(cfg, why)

    def _tune(self, now: float) -> None:
        maps, pf = self.maps, self.prefetches
        self._next_tune = now + TUNE_INTERVAL_S
        if not any(m.tuned for m in maps) and not any(p.tuned for p in pf):
            return
        t_prev, wait_prev, map_prev = self._window
        samples = []
        for m, (items0, work0) in zip(maps, map_prev, strict=True):
            items, work = m.gstats.items[0], sum(m.gstats.time_s)
            samples.append(autotune.MapSample(m.name, m.tuned, max(1, m.workers() or 1), items - items0,
                                              work - work0, m.item_bytes, m.max_workers))
        p = pf[-1] if pf else None
        measured = autotune.TuneStats(now - t_prev, self.wait_s - wait_prev, tuple(samples),
                                      bool(p and p.tuned), p.depth if p else 2, p.item_bytes if p else 0)
        cfg = autotune.pick_config(measured, self.budget)
        self._window = (now, self.wait_s, [(m.gstats.items[0], sum(m.gstats.time_s)) for m in maps])
        changed = False
        for m, w, cap in zip(maps, cfg.workers, cfg.max_inflight_items or [None] * len(maps), strict=True):
            if m.tuned and w != m.workers():
                m.target_workers = w
                changed = True
            m.max_inflight_items = cap
        if p is not None and p.tuned and cfg.prefetch != p.depth:
            p.depth = cfg.prefetch
            changed = True
        if changed:
            conf = dataclasses.replace(self._config(), workers=sum(cfg.workers),
                                       prefetch=cfg.prefetch if p is not None else 0)
            self._record(conf, cfg.why)
        else:
            log.debug("cpuwise.data: autotune: %s", cfg.why)

    def _record(self, config: PipelineConfig, why: str) -> None:
        self.decisions.append(Decision(t=round(time.time(), 3), config=config, why=why))
        if len(self.decisions) > MAX_DECISIONS:  # keep the first (start) and the latest ones
            del self.decisions[1 : len(self.decisions) - MAX_DECISIONS + 1]
        log.info("cpuwise.data: autotune: %s (config %s)", why, dataclasses.asdict(config))

    def _config(self) -> PipelineConfig:
        maps, pf = self.maps, self.prefetches
        started = any(m.pool is not None for m in maps)
        workers = sum(m.workers() if started else m.start_workers for m in maps)
        return stats.config(self.budget, workers, maps[0].backend if maps else "inline",
                            pf[-1].depth if pf else 0)

    # --- stats ----------------------------------------------------------------------------------
    def pipeline_stats(self) -> PipelineStats:
        """Per-stage time, wait ratios, the config and the autotune decisions, so far this epoch."""
        wall = time.perf_counter() - self.t_start
        return PipelineStats(pipeline=" -> ".join(s.describe() for s in self.chain), epoch=self.epoch,
                             items_out=self.items_out,
                             consumer_wait_ratio=stats.wait_ratio(self.wait_s, wall),
                             config=self._config(), stages=stats.stage_entries(self.top, wall),
                             decisions=list(self.decisions))

    def stats(self) -> dict[str, Any]:
        """`pipeline_stats()` as plain data (what `ds.stats()` returns and the doctor receives)."""
        return self.pipeline_stats().to_dict()
