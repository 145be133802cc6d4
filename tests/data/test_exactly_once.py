"""Every sample exactly once per epoch, in the same order for 1 and N workers."""

from __future__ import annotations

import numpy as np
import pytest
from engine_fns import Jitter, arange16, square, to_array
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cpuwise.data as cd
from cpuwise.testing.stages import plain

SETTINGS = settings(max_examples=25, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def flat_labels(ds: cd.Dataset) -> list[int]:
    out: list[int] = []
    for batch in ds:
        out.extend(np.asarray(batch[1]).tolist())
    return out


@SETTINGS
@given(n=st.integers(0, 120), workers=st.integers(1, 4), size=st.integers(1, 17), drop_last=st.booleans(),
       seed=st.integers(0, 3))
def test_exactly_once_threads(n: int, workers: int, size: int, drop_last: bool, seed: int) -> None:
    ds = (cd.from_sequence(list(range(n))).shuffle(seed=seed)
          .map(to_array, workers=workers, backend="thread").batch(size, drop_last=drop_last).prefetch(2))
    for _epoch in range(2):
        labels = flat_labels(ds)
        expected = n - (n % size if drop_last else 0)
        assert len(labels) == expected
        assert len(set(labels)) == expected and set(labels) <= set(range(n))
        if not drop_last:
            assert sorted(labels) == list(range(n))
    assert len(ds) == (n // size if drop_last else -(-n // size))
    ds.close()


@SETTINGS
@given(n=st.integers(1, 60), workers=st.integers(1, 3), size=st.integers(1, 9))
def test_order_independent_of_worker_count_threads(n: int, workers: int, size: int) -> None:
    def build(w: int) -> cd.Dataset:
        return (cd.from_sequence(list(range(n))).shuffle(seed=5).map(arange16, backend="inline")
                .map(Jitter(), workers=w, backend="thread").batch(size))

    one = [plain(b) for b in build(1)]
    many = [plain(b) for b in build(workers)]
    assert one == many


@pytest.fixture(scope="module")
def process_base() -> cd.Dataset:
    """One process pool shared by the process-backend cases below."""
    ds = cd.from_sequence(list(range(203))).shuffle(seed=3).map(to_array, workers=2, backend="process")
    yield ds
    ds.close()


@pytest.mark.parametrize("size,drop_last", [(1, False), (8, True), (10, False), (64, False)])
def test_exactly_once_processes(process_base: cd.Dataset, size: int, drop_last: bool) -> None:
    ds = process_base.batch(size, drop_last=drop_last).prefetch()
    for _ in range(2):
        labels = flat_labels(ds)
        if drop_last:
            assert len(labels) == 203 - 203 % size and len(set(labels)) == len(labels)
        else:
            assert sorted(labels) == list(range(203))
    ds.close_iterator = None  # the pool belongs to process_base; nothing to close here


def test_random_transforms_same_for_1_and_3_process_workers() -> None:
    base = cd.from_sequence(list(range(150))).shuffle(seed=11).map(arange16)
    one = [plain(x) for x in base.map(Jitter(), workers=1, backend="process").batch(7)]
    with base.map(Jitter(), workers=3, backend="process").batch(7) as ds:
        many = [plain(x) for x in ds]
    assert one == many
    # a new epoch reshuffles and redraws
    ds2 = base.map(Jitter(), workers=2, backend="thread").batch(7)
    e0 = [plain(x) for x in ds2]
    e1 = [plain(x) for x in ds2]
    assert e0 == one and e1 != e0


def test_square_processes_unbatched() -> None:
    with cd.from_sequence(range(500)).map(square, workers=2, backend="process") as ds:
        assert list(ds) == [i * i for i in range(500)]
        ds.set_epoch(0)
        assert list(ds) == [i * i for i in range(500)]


def test_large_non_array_payloads_travel_through_shared_memory() -> None:
    """Raw bytes (e.g. undecoded JPEGs) bigger than a pipe buffer, in both directions."""
    from engine_fns import double_bytes

    from cpuwise.data._engine import shm

    items = [bytes([i % 251]) * 70_000 for i in range(30)]
    with cd.from_sequence(items).map(double_bytes, workers=2, backend="process") as ds:
        assert list(ds) == [b * 2 for b in items]
    assert shm.leftovers(f"{shm.PREFIX}{__import__('os').getpid()}-") == []
