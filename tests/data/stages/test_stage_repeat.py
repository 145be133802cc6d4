"""repeat (after a filter): every pass is a new epoch upstream, so it reshuffles."""

from __future__ import annotations

import cpuwise.data as cd


def test_filter_and_repeat_reshuffle_each_pass() -> None:
    ds = cd.from_sequence(list(range(10))).shuffle(seed=1).filter(lambda x: x % 2 == 0).repeat(3)
    out = list(ds)
    passes = [out[0:5], out[5:10], out[10:15]]
    assert all(sorted(p) == [0, 2, 4, 6, 8] for p in passes)
    assert len({tuple(p) for p in passes}) > 1
    assert list(cd.from_sequence([]).repeat()) == []
