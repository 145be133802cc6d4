"""Assemble `ds.stats()` (shape agreed in INTERFACES.md) from the live stages' counters."""

from __future__ import annotations

from typing import Any

from cpuwise.data.map import MapStage
from cpuwise.data.prefetch import PrefetchStage
from cpuwise.data.stage import Stage, StageStats


def _entry(name: str, kind: str, items: int, time_s: float, wall: float, inclusive_s: float,
           workers: int | None, st: StageStats) -> dict[str, Any]:
    return {"name": name, "kind": kind, "items": int(items), "time_s": round(time_s, 6),
            "per_item_ms": round(1000.0 * time_s / items, 4) if items else 0.0,
            "wait_ratio": round(min(1.0, inclusive_s / wall), 4) if wall > 0 else 0.0,
            "workers": workers, "errors": st.errors, "skipped": list(st.skipped)}


def stage_entries(top: Stage, wall: float) -> list[dict[str, Any]]:
    """One entry per stage, source first; a fused map group gives one entry per map() call.

    time_s is the stage's own work (worker seconds for maps, exclusive time otherwise);
    wait_ratio is the share of wall time its consumer spent blocked on it (inclusive).
    """
    out: list[dict[str, Any]] = []
    for s in top.stages():
        if isinstance(s, MapStage):
            g = s.gstats
            for j, f in enumerate(s.fns):
                out.append(_entry(f"map({f.name})", "map", g.items[0], g.time_s[j], wall, g.wait_s,
                                  s.workers(), g.errors[j]))
            continue
        if isinstance(s, PrefetchStage):
            out.append(_entry(s.name, s.kind, s.stats.items, s.wait_s, wall, s.wait_s, None, s.stats))
            continue
        own = s.stats.next_time_s
        if s.upstream is not None and not isinstance(s.upstream, (MapStage, PrefetchStage)):
            own -= s.upstream.stats.next_time_s
        elif s.upstream is not None:
            own = s.stats.work_time_s
        out.append(_entry(s.name, s.kind, s.stats.items, max(0.0, own), wall, s.stats.next_time_s,
                          None, s.stats))
    return out
