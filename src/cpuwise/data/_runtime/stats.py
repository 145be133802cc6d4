"""Assemble `ds.stats()` as the typed `cpuwise._schema.PipelineStats`: the contract with the doctor.

The dict a user sees is `PipelineStats(...).to_dict()`; each stage contributes its own rows
(`Stage.stats_entries`), so a new stage needs nothing here.
"""

from __future__ import annotations

from collections.abc import Sequence

from cpuwise._schema import Decision, PipelineConfig, PipelineStats, StageEntry
from cpuwise.data._runtime.budget import Budget
from cpuwise.data.stages._base import Stage


def config(budget: Budget, workers: int = 0, backend: str = "inline", prefetch: int = 0) -> PipelineConfig:
    """The parallelism a pipeline runs with, within its budget."""
    return PipelineConfig(workers=int(workers), backend=backend, prefetch=prefetch, cpu_budget=budget.cpu,
                          ram_budget_bytes=budget.ram_bytes)


def stage_entries(top: Stage, wall: float) -> list[StageEntry]:
    """One entry per stage, source first; a fused map group gives one entry per map() call.

    time_s is the stage's own work (worker seconds for maps, exclusive time otherwise);
    wait_ratio is the share of wall time its consumer spent blocked on it (inclusive).
    """
    return [entry for stage in top.stages() for entry in stage.stats_entries(wall)]


def wait_ratio(wait_s: float, wall: float) -> float:
    """The share of `wall` the consumer spent inside `__next__`."""
    return round(min(1.0, wait_s / wall), 4) if wall > 0 else 0.0


def not_started(pipeline: str, epoch: int, budget: Budget, decisions: Sequence[Decision]) -> PipelineStats:
    """The stats of a pipeline that was never iterated."""
    return PipelineStats(pipeline=pipeline, epoch=epoch, items_out=0, consumer_wait_ratio=0.0,
                         config=config(budget), stages=[], decisions=list(decisions))
