"""Turn the `next` records of the channel into StepRecords (pure).

Step i runs from delivery i to delivery i+1 of the same iterator in the same process: its
data-wait is the time inside `__next__` i, its sync the host-blocked-on-device time reported before
`__next__` i+1, and its compute the rest. When several sources report (a `cpuwise.watch` loop over a
DataLoader), the most explicit one wins: watch > cpuwise.data > dataloader.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cpuwise._schema import StepRecord

SOURCE_PRIORITY = ("watch", "cpuwise.data", "dataloader")


def pick_source(events: list[dict[str, Any]]) -> str | None:
    """The source whose steps to use, or None when there are no `next` records."""
    present = {e.get("src") for e in events}
    for src in SOURCE_PRIORITY:
        if src in present:
            return src
    return next(iter(sorted(s for s in present if isinstance(s, str))), None)


def build_steps(events: list[dict[str, Any]], t0: float) -> list[StepRecord]:
    """StepRecords from `next` records ({"pid", "a", "b", "src", "it", "end", "sync"}).

    Args:
        events: the `next` records, in any order.
        t0: the recording's start (time.perf_counter() clock); step times are relative to it.
    """
    source = pick_source(events)
    if source is None:
        return []
    streams: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e.get("src") == source:
            streams[(e.get("pid"), e.get("it"))].append(e)
    steps: list[StepRecord] = []
    for (pid, _), evs in streams.items():
        evs.sort(key=lambda e: float(e["a"]))
        for cur, nxt in zip(evs, evs[1:], strict=False):
            if cur.get("end"):
                continue
            a, b = float(cur["a"]), float(cur["b"])
            gap = max(0.0, float(nxt["a"]) - b)
            sync = min(max(0.0, float(nxt.get("sync") or 0.0)), gap)
            steps.append(StepRecord(index=0, t_start=a - t0, data_wait_s=max(0.0, b - a),
                                    compute_s=gap - sync, sync_s=sync,
                                    pid=int(pid) if pid is not None else None))
    steps.sort(key=lambda s: s.t_start)
    for i, s in enumerate(steps):
        s.index = i
    return steps
