"""cache: later epochs come from the record (memory, or memory-mapped files that outlive the pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from engine_fns import arange16, to_array

import cpuwise.data as cd


def test_memory_cache_serves_later_epochs_without_running_upstream() -> None:
    calls = []

    def count(x: int) -> int:
        calls.append(x)
        return x

    ds = cd.from_sequence(list(range(20))).map(count, backend="inline").cache().shuffle(seed=0)
    e0, e1 = list(ds), list(ds)
    assert sorted(e0) == sorted(e1) == list(range(20)) and e0 != e1
    assert len(calls) == 20


def test_disk_cache_memory_maps_and_survives_a_new_pipeline(tmp_path: Path) -> None:
    def make() -> cd.Dataset:
        return (cd.from_sequence(list(range(50))).map(to_array, workers=2, backend="thread")
                .cache(tmp_path / "c"))

    first = [(a.copy(), y) for a, y in make()]
    assert (tmp_path / "c" / "done.json").exists()
    assert json.loads((tmp_path / "c" / "done.json").read_text())["count"] == 50
    again = make()
    second = list(again)
    assert all(np.array_equal(a, b) and y == z for (a, y), (b, z) in zip(first, second, strict=True))
    assert second[0][0].flags.writeable  # copy-on-write map: writable, never written back
    second[0][0][:] = 0
    assert np.array_equal(next(iter(make()))[0], first[0][0])
    changed = cd.from_sequence(list(range(50))).map(arange16).cache(tmp_path / "c")
    assert np.array_equal(next(iter(changed)), np.arange(16))  # other upstream: rebuilt, not stale
