"""take: the first n items of each epoch, its length, and an early end with workers in flight."""

from __future__ import annotations

import pytest
from engine_fns import square

import cpuwise.data as cd


def test_take_yields_the_first_n_items_of_each_epoch() -> None:
    full = cd.from_sequence(list(range(50))).shuffle(seed=0)
    ds = full.take(7)
    e0, e1 = list(ds), list(ds)
    assert e0 == list(full)[:7] and len(e1) == 7 and e0 != e1  # each epoch reshuffles
    assert len(ds) == 7 and len(cd.from_sequence(list(range(5))).take(7)) == 5
    with pytest.raises(TypeError, match="not known"):
        len(cd.from_sequence(list(range(50))).filter(bool).take(7))


def test_take_ends_an_epoch_with_process_workers_in_flight() -> None:
    base = cd.from_sequence(list(range(1000))).map(square, workers=2, backend="process")
    with base.batch(10).take(3) as ds:
        for _ in range(2):  # the next epoch starts clean
            assert [b.tolist() for b in ds] == [[i * i for i in range(10 * k, 10 * k + 10)] for k in range(3)]
