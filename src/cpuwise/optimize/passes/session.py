"""The session pass: measure the runtime's settings grid (threads, spinning, graph level) and keep the
fastest for the target.

Spinning threads lower latency on a quiet machine and waste cores on a busy one, and the best thread
count depends on the model and the batch, so the settings are measured here, not assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cpuwise.optimize.io import IOConfig
from cpuwise.optimize.passes.base import Basis, Outcome, Pass, Plan
from cpuwise.optimize.search.choose import bench_speed
from cpuwise.optimize.search.judge import Judge, first_line


class SessionPass(Pass):
    """The fastest runtime settings on this CPU for the FP32 graph (lossless)."""

    name = "session"

    def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        grid = judge.runtime.settings_grid(plan.cores, quick=plan.quick)
        settings, sweep = fastest_settings(basis.graph, grid, basis.io, judge, plan.target)
        label = "ONNX FP32 + tuned session" + (" + dynamic padding" if basis.io.dynamic_padding else "")
        c = judge.measure_file(label, self.name, basis.graph, settings, basis.io, params={"sweep": sweep},
                               notes=[settings.label()])
        return Outcome([c])


def fastest_settings(
    path: Path, grid: Sequence[Any], io: IOConfig, judge: Judge, target: str
) -> tuple[Any, list[dict[str, Any]]]:
    """Time the model with each settings; the fastest for `target` (defaults if none ran) and the sweep."""
    rows: list[dict[str, Any]] = []
    best: tuple[float, Any] | None = None
    for s in grid:
        try:
            res = judge.bench(judge.runtime.runner(judge.runtime.session(path, s)), io, sweep=True)
        except Exception as exc:  # noqa: BLE001 - a setting the runtime rejects is skipped
            rows.append({"settings": s.to_dict(), "error": first_line(exc)})
            continue
        value = bench_speed(res, target)
        rows.append({"settings": s.to_dict(), "p50_ms": res.p50_ms, "throughput": res.throughput})
        if best is None or value > best[0]:
            best = (value, s)
    if best is None:
        return judge.runtime.default_settings(), rows
    return best[1], rows
