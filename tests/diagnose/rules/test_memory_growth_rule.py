"""The memory-growth rule: per worker, on the series the sampler kept (USS, else RSS)."""

from __future__ import annotations

import copy

from cpuwise.diagnose import diagnose
from cpuwise.testing.recordings import fake_recording


def test_memory_growth_in_one_worker_only() -> None:
    rec = fake_recording("memory_growth")
    base = copy.deepcopy(rec)
    for p in rec.processes:
        if p.pid == 1002 and p.uss_bytes is not None:  # only worker 1001 keeps growing
            first = next(q for q in base.processes if q.pid == 1002)
            p.uss_bytes, p.rss_bytes = first.uss_bytes, first.rss_bytes
    f = diagnose(rec)[0]
    assert f.id == "memory_growth" and f.severity == "moderate" and len(f.evidence) == 1
    assert "1001" in f.evidence[0]


def test_one_worker_growing_fast_enough_to_fill_a_node_within_the_hour_is_high_severity() -> None:
    rec = fake_recording("memory_growth")
    firsts: dict[int, tuple[int, int]] = {}
    for p in rec.processes:
        if p.uss_bytes is None or p.pid not in (1001, 1002):
            continue
        first = firsts.setdefault(p.pid, (p.uss_bytes, p.rss_bytes))
        if p.pid == 1002:  # flat
            p.uss_bytes, p.rss_bytes = first
        else:  # 1001 grows 40 times as fast as in the fake
            p.uss_bytes = first[0] + 40 * (p.uss_bytes - first[0])
            p.rss_bytes = first[1] + 40 * (p.rss_bytes - first[1])
    f = diagnose(rec)[0]
    assert f.id == "memory_growth" and len(f.evidence) == 1 and "1001" in f.evidence[0]
    assert f.severity == "high", f.summary
