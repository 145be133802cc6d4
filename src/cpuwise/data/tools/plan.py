"""Capacity plan for a pipeline measured on its own: run it briefly, then plan from its stats.

    from cpuwise.data.tools.plan import plan_pipeline
    plan = plan_pipeline(ds, seconds=10, target_samples_s=32_000)   # 8 H100s on ResNet-50
    print("\\n".join(plan.lines()))

The pipeline runs as fast as it can (no consumer), so each stage's CPU seconds per delivered sample
is what it costs; the arithmetic is cpuwise._scaleout.capacity_plan (`cpuwise plan` prints it).
"""

from __future__ import annotations

import time

from cpuwise import host
from cpuwise._scaleout import CapacityPlan, plan_from_stats
from cpuwise._schema import PipelineStats
from cpuwise.data.dataset import Dataset
from cpuwise.errors import ConfigError


def measure(ds: Dataset, seconds: float = 10.0) -> PipelineStats:
    """Iterate `ds` for up to `seconds` (or one epoch, if shorter) and return its stats."""
    if not seconds > 0:
        raise ConfigError(f"measure: expected seconds > 0, found {seconds!r}. Fix: seconds=10.")
    it = iter(ds)
    deadline = time.perf_counter() + seconds
    try:
        for _ in it:
            if time.perf_counter() >= deadline:
                break
        return PipelineStats.from_dict(it.stats())
    finally:
        it.close()


def plan_pipeline(ds: Dataset, *, seconds: float = 10.0, target_samples_s: float | None = None,
                  reserved_cores: float = 1.0, cores_per_node: float | None = None) -> CapacityPlan:
    """Measure `ds` for `seconds` and plan its preprocessing for `target_samples_s` on this machine."""
    stats = measure(ds, seconds)
    plan = plan_from_stats(stats, steps_s=None, target_samples_s=target_samples_s,
                           usable_cores=float(host.usable_cores()), reserved_cores=reserved_cores,
                           cores_per_node=cores_per_node)
    if plan is None:
        raise ConfigError(f"plan: the pipeline delivered nothing in {seconds:g} s ({ds.describe()}); "
                          "expected at least one item. Fix: give it more --seconds, or check its source.")
    return plan
