"""Collect the job's step summaries ("steps" records of the channel) into bounded lanes.

Each process pairs its own deliveries into steps and summarises them (`cpuwise._channel`); here one
`LaneBuilder` per (process, step source) merges those summaries, so the doctor's memory and report
time do not grow with the number of steps. When several sources report in one job (a `cpuwise.watch`
loop over a DataLoader, a Lightning callback over its DataLoader), the most explicit one wins:
watch > framework callbacks > cpuwise.data > dataloader.
"""

from __future__ import annotations

from typing import Any

from cpuwise._schema import StepLane, StepRecord
from cpuwise._steps import LaneBuilder

SOURCE_PRIORITY = ("watch", "lightning", "hf", "keras", "cpuwise.data", "dataloader")


def pick_source(sources: set[str]) -> str | None:
    """The source whose steps to use, or None when no step was reported."""
    for src in SOURCE_PRIORITY:
        if src in sources:
            return src
    return next(iter(sorted(s for s in sources if isinstance(s, str))), None)


class StepCollector:
    """Folds "steps" records into one LaneBuilder per (pid, source); `lanes()` returns the chosen ones."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.builders: dict[tuple[int, str], LaneBuilder] = {}
        self.last_progress: float | None = None  # perf_counter time of the latest delivery

    def ingest(self, record: dict[str, Any]) -> None:
        """Fold one "steps" record (malformed parts are skipped)."""
        pid = record.get("pid")
        if not isinstance(pid, int):
            return
        b = record.get("b")
        if isinstance(b, int | float) and b > 0:
            self.last_progress = b if self.last_progress is None else max(self.last_progress, b)
        sources = {g[0] for g in record.get("g") or [] if isinstance(g, list) and g and isinstance(g[0], str)}
        for src in sources:
            key = (pid, src)
            builder = self.builders.get(key)
            if builder is None:
                builder = self.builders[key] = LaneBuilder(pid, src, self.t0, seed=len(self.builders))
            try:
                builder.add(record)
            except (TypeError, ValueError):  # a malformed record from a job of another version
                continue

    def source(self) -> str | None:
        """The step source the recording uses (see SOURCE_PRIORITY)."""
        return pick_source({src for _, src in self.builders})

    def lanes(self) -> tuple[list[StepLane], list[StepRecord]]:
        """The lanes of the chosen source (by start) and their sample of whole steps (by start)."""
        src = self.source()
        chosen = [b for (_, s), b in self.builders.items() if s == src and b.n > 0]
        lanes = sorted((b.lane() for b in chosen), key=lambda lane: (lane.first_t, lane.pid or 0))
        sample = sorted((s for b in chosen for s in b.sample()),
                        key=lambda s: (s.t_start, s.pid or 0, s.index))
        return lanes, sample
