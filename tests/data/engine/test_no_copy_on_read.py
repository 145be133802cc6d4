"""Memory stays flat over many epochs of a data set held as Python objects (no copy-on-read)."""

from __future__ import annotations

import gc

import psutil
import pytest
from engine_fns import obj_record

import cpuwise.data as cd


def uss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_full_info().uss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


@pytest.mark.slow
def test_rss_flat_over_20_epochs_of_python_objects() -> None:
    records = [{"name": f"sample-{i:06d}" * 3, "value": i, "tags": [str(i), "x"]} for i in range(20000)]
    ds = cd.from_sequence(records).shuffle(seed=0).map(obj_record, workers=2, backend="process").batch(256)
    expected = sum(len(r["name"]) + r["value"] for r in records)
    pids: list[int] = []
    marks = []
    for epoch in range(20):
        total = sum(int(b.sum()) for b in ds)
        assert total == expected
        if epoch in (2, 19):
            gc.collect()
            pids = [psutil.Process().pid, *ds.worker_pids()]
            marks.append((uss(pids), psutil.Process().memory_info().rss))
    ds.close()
    (uss_early, rss_early), (uss_late, rss_late) = marks
    # generous bounds: allocator noise is a few MB; copy-on-read of 20k dicts would be tens of MB
    assert uss_late - uss_early < 24 * 2**20, (uss_early, uss_late)
    assert rss_late - rss_early < 24 * 2**20, (rss_early, rss_late)
