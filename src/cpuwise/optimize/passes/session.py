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
            ranked, sweep = ranked_settings(basis.graph, group, basis.io, judge, plan.target, rt)
            # the runner-up too when it was close: one sweep on a busy machine may rank them wrongly
            picks = ranked[:1] + [(s, v) for s, v in ranked[1:2] if v >= RUNNER_UP * ranked[0][1]]
            for settings, _ in picks or [(rt.default_settings(), 0.0)]:
                parts = basis.parts | {"settings": f"tuned: {settings.label()}"}
                out.candidates.append(judge.measure_file(
                    "", self.name, basis.graph, settings, basis.io, runtime=rt, parts=parts,
                    parent=basis.best.name, params={"sweep": sweep}, notes=[settings.label()]))
        return out


RUNNER_UP = 0.8  # the second-fastest settings become a candidate too when within 20 % of the fastest


def ranked_settings(
    path: Path, grid: Sequence[Any], io: IOConfig, judge: Judge, target: str, runtime: Runtime | None = None
) -> tuple[list[tuple[Any, float]], list[dict[str, Any]]]:
    """Time the model with each settings: (settings, speed) fastest first for `target`, and the sweep."""
    rt = runtime or judge.runtime
    rows: list[dict[str, Any]] = []
    ranked: list[tuple[Any, float]] = []
    for s in grid:
        try:
            res = judge.bench(rt.runner(rt.session(path, s)), io, sweep=True)
        except Exception as exc:  # noqa: BLE001 - a setting the runtime rejects is skipped
            rows.append({"settings": s.to_dict(), "error": first_line(exc)})
            continue
        ranked.append((s, bench_speed(res, target)))
        rows.append({"settings": s.to_dict(), "p50_ms": res.p50_ms, "throughput": res.throughput})
    ranked.sort(key=lambda sv: -sv[1])
    return ranked, rows


def fastest_settings(
    path: Path, grid: Sequence[Any], io: IOConfig, judge: Judge, target: str, runtime: Runtime | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    """Time the model with each settings; the fastest for `target` (defaults if none ran) and the sweep."""
    ranked, rows = ranked_settings(path, grid, io, judge, target, runtime)
    return (ranked[0][0] if ranked else (runtime or judge.runtime).default_settings()), rows
