"""A worker that is alive but stuck is found, named and recovered (issue 14, item 11).

The map functions here block on a file the test controls, with a tiny hang_timeout: the assertions
are on what the pipeline delivers and raises, never on how long it took.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from engine_fns import hang_on_7, hang_on_7_once
from guards import all_gone, my_segments, within

import cpuwise.data as cd
from cpuwise.errors import ConfigError, WorkerError

HANG_S = 1.0  # tiny: a sample that does not move for a second is hung


def samples(arg: Path, n: int = 30) -> list[tuple[str, str]]:
    return [(f"s{i}", str(arg)) for i in range(n)]


@pytest.fixture
def release(tmp_path: Path) -> Path:
    path = tmp_path / "release"
    yield path
    path.touch()  # whatever happened, nothing stays blocked


def test_a_sample_that_hangs_every_worker_is_skipped_and_named(release: Path) -> None:
    ds = cd.from_sequence(samples(release)).map(hang_on_7, on_error="skip", workers=2, backend="process",
                                                hang_timeout=HANG_S)
    try:
        assert within(lambda: list(ds), "an epoch with a hung sample") == [i for i in range(30) if i != 7]
        entry = ds.stats()["stages"][-1]
        assert entry["skipped"] == ["s7"] and entry["errors"] == 1
        pids = ds.worker_pids()
    finally:
        ds.close()
    assert all_gone(pids) and my_segments() == []


def test_a_sample_that_hangs_twice_raises_worker_error_naming_it(release: Path) -> None:
    ds = cd.from_sequence(samples(release)).map(hang_on_7, workers=2, backend="process", hang_timeout=HANG_S)
    try:
        with pytest.raises(WorkerError, match=r"sample 's7' hung a worker process twice") as info:
            within(lambda: list(ds), "an epoch with a hung sample")
        assert "hang_timeout" in str(info.value) and "on_error='skip'" in str(info.value)
    finally:
        ds.close()
    assert my_segments() == []


def test_a_worker_hung_once_is_killed_restarted_and_its_task_redone(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "hung-once"
    with cd.from_sequence(samples(marker)).map(hang_on_7_once, workers=2, backend="process",
                                               hang_timeout=HANG_S) as ds:
        it = iter(ds)
        with caplog.at_level("WARNING", logger="cpuwise.data"):
            first = next(it)
            started = set(ds.worker_pids())
            assert within(lambda: [first, *it], "an epoch with one hang") == list(range(30))
        assert marker.exists() and started - set(ds.worker_pids())  # the hung one was replaced
        assert len(ds.worker_pids()) == 2
    warned = [r.getMessage() for r in caplog.records if "made no progress" in r.getMessage()]
    assert any("sample 's7'" in w and "hang_timeout" in w for w in warned), warned


def test_a_hung_thread_is_a_worker_error_naming_the_sample(release: Path) -> None:
    ds = cd.from_sequence(samples(release)).map(hang_on_7, on_error="skip", workers=2, backend="thread",
                                                hang_timeout=HANG_S)
    with pytest.raises(WorkerError, match=r"a worker thread made no progress .* on sample 's7'") as info:
        within(lambda: list(ds), "an epoch with a hung thread")
    assert "backend='process'" in str(info.value)
    release.touch()
    ds.close()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "300", True])
def test_hang_timeout_is_checked(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"hang_timeout: expected a number of seconds > 0"):
        cd.from_sequence([1]).map(abs, hang_timeout=bad)  # type: ignore[arg-type]
    assert list(cd.from_sequence([-1]).map(abs, hang_timeout=math.inf, backend="thread")) == [1]


def test_an_idle_pool_is_never_taken_for_a_hung_one(tmp_path: Path) -> None:
    """Workers that finished their tasks wait, however long the consumer pauses."""
    with cd.from_sequence(samples(tmp_path / "unused", 6)).map(hang_on_7_once, workers=1, backend="process",
                                                               hang_timeout=HANG_S) as ds:
        it = iter(ds)
        first = next(it)
        pids = ds.worker_pids()
        time.sleep(2.5 * HANG_S)  # a pause in the consumer, not a measurement
        assert [first, *it] == list(range(6)) and ds.worker_pids() == pids
