"""shuffle: a global permutation of the source through per-sample maps, a window otherwise."""

from __future__ import annotations

import tracemalloc

from engine_fns import square

import cpuwise.data as cd
from cpuwise.testing.stages import check_resume


def test_shuffle_after_a_map_permutes_the_source_without_a_window() -> None:
    ds = cd.from_sequence(list(range(50))).map(lambda x: x * 10, backend="inline").shuffle(seed=4)
    stages = iter(ds).built.top.stages()
    assert [s.kind for s in stages] == ["source", "map", "shuffle"]
    assert type(stages[-1]).__name__ == "GlobalShuffle"
    e0, e1 = list(ds), list(ds)
    assert sorted(e0) == sorted(e1) == [10 * i for i in range(50)] and e0 != e1
    filtered = cd.from_sequence(list(range(50))).filter(bool).shuffle(seed=4)
    assert type(iter(filtered).built.top).__name__ == "WindowShuffle"


def test_window_shuffle_state_is_not_copied_for_every_item() -> None:
    """A prefetch stage keeps the state after each item it reads ahead; a window shuffle's state must
    not copy its buffer for each one (issue 14: window shuffle + prefetch was 9x slower)."""
    samples = list(range(150_000))  # made before tracing: only the pipeline's own allocations count
    window = 40_000  # one copy of its list: 320 KB
    ds = cd.from_iterable(samples).shuffle(seed=0, buffer_size=window).prefetch(4)
    it = iter(ds)
    for _ in range(50):  # the window is full and the state taken at the epoch's start released
        next(it)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(3000):
            next(it)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    ds.close()
    assert peak < window * 8 // 4, f"iterating allocated up to {peak} bytes: the window was copied"


def test_window_shuffle_with_prefetch_and_workers_resumes_from_every_position() -> None:
    """The state after each item is a lazy snapshot of the window: each must build the window as it
    was when that item was handed out, while the prefetch thread has read further ahead."""
    check_resume(lambda: cd.from_iterable(lambda: iter(range(90))).shuffle(seed=3, buffer_size=16)
                 .map(square, workers=2, backend="thread").prefetch(5).batch(4))
    check_resume(lambda: cd.from_iterable(lambda: iter(range(40))).shuffle(seed=1, buffer_size=8).prefetch(3),
                 epoch=1, positions=range(0, 41, 3))
