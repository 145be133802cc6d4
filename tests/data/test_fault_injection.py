"""Seeded fault injection (issue 14): many epochs with worker kills, interrupts, resumes and corrupt
files; every item delivered exactly once, skips counted and named, nothing left behind.

Faults happen at item counts drawn from the seed, never at times; the run is bounded by its epoch
count (a minute at most on a loaded 2-core machine). benchmarks/soak.py runs the same for minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cpuwise.testing.faults import make_files, run_faults


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_files(tmp_path_factory.mktemp("fault-data"), n=90)


def test_faults_shuffled_pipeline(files) -> None:  # type: ignore[no-untyped-def]
    report = run_faults(files, epochs=10, seed=14)
    assert not report.problems, "\n".join(report.problems)
    assert report.epochs == 10 and report.items == 10 * len(files.good)
    assert set(report.events) == {"kill", "interrupt", "resume", "close"}  # the seed exercises each


def test_faults_while_a_disk_cache_records(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = run_faults(files, epochs=4, seed=7, cache_dir=tmp_path / "cache")
    assert not report.problems, "\n".join(report.problems)
    assert report.items == 4 * len(files.good)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["data.bin", "done.json", "items.jsonl"]
