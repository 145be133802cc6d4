"""The session pass: measure the runtime's settings grid (threads, streams, spinning, precision, graph
level) and keep the fastest for the target.

Spinning threads lower latency on a quiet machine and waste cores on a busy one; streams (batches in
flight at once) beat one batch on every core when the ops are small; the best thread count depends on
the model and the batch: so the settings are measured here, not assumed. Settings that compute in
lower precision (OpenVINO bf16) are measured as their own candidate, scored like any lossy one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cpuwise.optimize.io import IOConfig
from cpuwise.optimize.passes.base import Basis, Outcome, Pass, Plan
from cpuwise.optimize.runtimes import Runtime
from cpuwise.optimize.search.choose import bench_speed
from cpuwise.optimize.search.judge import Judge, first_line


class SessionPass(Pass):
    """The fastest runtime settings on this CPU for the FP32 graph (lossless; lossy precision apart)."""

    name = "session"

    def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        rt = basis.rt
        grid = list(rt.settings_grid(plan.cores, quick=plan.quick))
        out = Outcome()
        lossless = [s for s in grid if rt.lossless(s)]
        lossy = [s for s in grid if not rt.lossless(s)]
        for group in (lossless, lossy):
            if not group:
                continue
            settings, sweep = fastest_settings(basis.graph, group, basis.io, judge, plan.target, rt)
            parts = basis.parts | {"settings": f"tuned: {settings.label()}"}
            out.candidates.append(judge.measure_file(
                "", self.name, basis.graph, settings, basis.io, runtime=rt, parts=parts,
                parent=basis.best.name, params={"sweep": sweep}, notes=[settings.label()]))
        return out


def fastest_settings(
    path: Path, grid: Sequence[Any], io: IOConfig, judge: Judge, target: str, runtime: Runtime | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    """Time the model with each settings; the fastest for `target` (defaults if none ran) and the sweep."""
    rt = runtime or judge.runtime
    rows: list[dict[str, Any]] = []
    best: tuple[float, Any] | None = None
    for s in grid:
        try:
            res = judge.bench(rt.runner(rt.session(path, s)), io, sweep=True)
        except Exception as exc:  # noqa: BLE001 - a setting the runtime rejects is skipped
            rows.append({"settings": s.to_dict(), "error": first_line(exc)})
            continue
        value = bench_speed(res, target)
        rows.append({"settings": s.to_dict(), "p50_ms": res.p50_ms, "throughput": res.throughput})
        if best is None or value > best[0]:
            best = (value, s)
    if best is None:
        return rt.default_settings(), rows
    return best[1], rows
