"""shuffle: a global permutation of the source through per-sample maps, a window otherwise."""

from __future__ import annotations

import cpuwise.data as cd


def test_shuffle_after_a_map_permutes_the_source_without_a_window() -> None:
    ds = cd.from_sequence(list(range(50))).map(lambda x: x * 10, backend="inline").shuffle(seed=4)
    stages = iter(ds).built.top.stages()
    assert [s.kind for s in stages] == ["source", "map", "shuffle"]
    assert type(stages[-1]).__name__ == "GlobalShuffle"
    e0, e1 = list(ds), list(ds)
    assert sorted(e0) == sorted(e1) == [10 * i for i in range(50)] and e0 != e1
    filtered = cd.from_sequence(list(range(50))).filter(bool).shuffle(seed=4)
    assert type(iter(filtered).built.top).__name__ == "WindowShuffle"
