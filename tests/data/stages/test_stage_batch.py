"""batch: collate, drop_last, len, a custom collate, and the partial batch a caught SampleError leaves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import cpuwise.data as cd
from cpuwise.data.stages.batch import collate
from cpuwise.errors import PipelineError, SampleError


def test_collate_tuples_dicts_and_scalars() -> None:
    out = collate([(np.zeros((2, 2), np.uint8), 1, 0.5, "a", {"k": True}),
                   (np.ones((2, 2), np.uint8), 2, 1.5, "b", {"k": False})])
    imgs, labels, floats, names, d = out
    assert imgs.shape == (2, 2, 2) and imgs.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [1, 2]
    assert floats.tolist() == [0.5, 1.5] and names == ["a", "b"] and d["k"].tolist() == [True, False]
    with pytest.raises(PipelineError, match=r"one shape.*\(2, 2\).*\(3, 3\)"):
        collate([np.zeros((2, 2)), np.zeros((3, 3))])


def test_batch_drop_last_len_and_custom_collate() -> None:
    ds = cd.from_sequence(list(range(10)))
    assert [b.tolist() for b in ds.batch(4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(ds.batch(4)) == 3 and len(ds.batch(4, drop_last=True)) == 2
    assert list(ds.batch(3, collate=sum)) == [3, 12, 21, 9]


def fail_on_5(x: int) -> int:
    if x == 5:
        raise ValueError("bad sample 5")
    return x


def _collect_with_errors(ds: Any) -> list[Any]:
    out: list[Any] = []
    it = iter(ds)
    while True:
        try:
            b = next(it)
        except StopIteration:
            return out
        except SampleError:
            out.append("ERR")
            continue
        out.append([int(v) for v in b])


@pytest.mark.parametrize("prefetch", [False, True])
def test_caught_sample_error_keeps_partial_batch(prefetch: bool) -> None:
    ds = cd.from_sequence(list(range(12))).map(fail_on_5, workers=1, backend="inline").batch(4)
    if prefetch:
        ds = ds.prefetch()
    assert _collect_with_errors(ds) == [[0, 1, 2, 3], "ERR", [4, 6, 7, 8], [9, 10, 11]]
    ds.close()


def test_partial_batch_survives_state_resume() -> None:
    ds = cd.from_sequence(list(range(12))).map(fail_on_5, workers=1, backend="inline").batch(4)
    it = iter(ds)
    assert [int(v) for v in next(it)] == [0, 1, 2, 3]
    with pytest.raises(SampleError):
        next(it)
    state = ds.state_dict()
    rest = [[int(v) for v in b] for b in it]
    assert rest == [[4, 6, 7, 8], [9, 10, 11]]
    ds.load_state_dict(state)
    assert [[int(v) for v in b] for b in ds] == [[4, 6, 7, 8], [9, 10, 11]]
    ds.close()
