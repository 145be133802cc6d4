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
