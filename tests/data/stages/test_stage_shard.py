"""shard: disjoint, equal steps, every item once per epoch, a new permutation each epoch, the same for
any worker count, and elastic resume from every step into any world size (1..5 ranks, simulated)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from engine_fns import Jitter, arange16, square
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cpuwise.data as cd
from cpuwise.data.stages.shard import share_positions
from cpuwise.errors import ConfigError, PipelineError, StateError
from cpuwise.testing.stages import plain

Make = Callable[[int, int], cd.Dataset]  # (world_size, rank) -> that rank's pipeline
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def indexed(n: int, seed: int, drop: bool, batch: int) -> Make:
    return lambda w, r: (cd.from_sequence(list(range(n))).shuffle(seed=seed)
                         .shard(w, r, drop_remainder=drop).batch(batch))


def streamed(n: int, seed: int, drop: bool, batch: int) -> Make:
    return lambda w, r: (cd.from_iterable(lambda: iter(range(n))).shuffle(seed=seed, buffer_size=4)
                         .shard(w, r, drop_remainder=drop).batch(batch))


def global_order(make: Make, epoch: int = 0) -> list[int]:
    """The epoch's order of the same pipeline in one process (world size 1)."""
    ds = make(1, 0)
    ds.set_epoch(epoch)
    return [int(x) for b in ds for x in b]


def epoch_of(make: Make, world: int, epoch: int = 0) -> list[list[list[int]]]:
    """Each rank's batches of `epoch`."""
    out = []
    for r in range(world):
        ds = make(world, r)
        ds.set_epoch(epoch)
        out.append([[int(x) for x in b] for b in ds])
    return out


def dealt(order: list[int], n_total: int, start: int, world: int, drop: bool) -> list[list[int]]:
    """What each rank should get of `order` (an epoch's global order), dealing from `start`."""
    if not order:
        return [[] for _ in range(world)]
    return [[order[p] for p in share_positions(len(order), start, world, r, drop)] for r in range(world)]


def flat(batches: list[list[int]]) -> list[int]:
    return [x for b in batches for x in b]


@SETTINGS
@given(world=st.integers(1, 5), n=st.integers(0, 31), batch=st.integers(1, 6), drop=st.booleans(),
       seed=st.integers(0, 2**31), stream=st.booleans())
def test_ranks_deal_one_global_order_round_robin_with_equal_steps(world: int, n: int, batch: int, drop: bool,
                                                                  seed: int, stream: bool) -> None:
    make = (streamed if stream else indexed)(n, seed, drop, batch)
    for epoch in (0, 1):
        order = global_order(make, epoch)
        assert sorted(order) == list(range(n))
        ranks = epoch_of(make, world, epoch)
        want = dealt(order, n, 0, world, drop)
        assert [flat(r) for r in ranks] == want  # each rank: its positions r, r+W, ... (pads wrap)
        assert len({len(r) for r in ranks}) == 1, "every rank runs the same number of steps"
        assert {len(r) for r in ranks} == {-(-len(want[0]) // batch)}
        if not stream:
            assert len(make(world, 0)) == len(ranks[0])
        real = [x for r in range(world) for x in flat(ranks[r])[: (n - r + world - 1) // world]]
        if not drop:  # every item exactly once per epoch, the rest pads
            assert sorted(real) == list(range(n))
        else:  # every item of the complete rounds once, the rest dropped
            assert sorted(flat(sum(ranks, []))) == sorted(order[: (n // world) * world])


def test_each_epoch_is_a_new_permutation_and_ranks_stay_disjoint() -> None:
    make = indexed(40, 3, False, 4)
    seen = []
    for epoch in range(3):
        ranks = epoch_of(make, 4, epoch)
        items = [flat(r) for r in ranks]
        assert sorted(sum(items, [])) == list(range(40))
        seen.append(items[0])
    assert seen[0] != seen[1] != seen[2], "rank 0 gets a different share each epoch (global reshuffle)"


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_identical_for_any_worker_count(backend: str) -> None:
    def make(workers: int) -> Make:
        return lambda w, r: (cd.from_sequence(list(range(37))).shuffle(seed=5).shard(w, r)
                             .map(arange16, workers=workers, backend=backend).map(Jitter()).batch(3))

    def epoch(workers: int, rank: int) -> list[Any]:
        ds = make(workers)(3, rank)
        out = [plain(b) for b in ds]
        ds.close()
        return out

    for rank in range(3):
        assert epoch(1, rank) == epoch(3, rank)


def test_random_maps_after_the_shard_differ_between_ranks() -> None:
    def first(rank: int) -> Any:
        ds = cd.from_sequence([0] * 8).shard(2, rank).map(arange16, backend="inline").map(Jitter())
        return plain(next(iter(ds)))

    assert first(0) != first(1), "rank 0's and rank 1's first samples got the same random draws"


@SETTINGS
@given(world=st.integers(1, 5), n=st.integers(0, 29), batch=st.integers(1, 4), seed=st.integers(0, 99),
       stream=st.booleans(), skip=st.booleans())
def test_filter_and_skip_keep_steps_equal_by_padding_in_place(world: int, n: int, batch: int, seed: int,
                                                             stream: bool, skip: bool) -> None:
    """A dropped sample is replaced by the rank's previous one (or the next real one): equal steps,
    every kept item delivered, no dropped item delivered."""

    def make(w: int, r: int, drop_some: bool = True) -> cd.Dataset:
        src = cd.from_iterable(lambda: iter(range(n))) if stream else cd.from_sequence(list(range(n)))
        ds = src.shuffle(seed=seed, buffer_size=3).shard(w, r)
        if drop_some and skip:
            ds = ds.map(fail_if_multiple_of_3, backend="inline", on_error="skip")
        elif drop_some:
            ds = ds.filter(not_multiple_of_3)
        return ds.batch(batch)

    order = global_order(lambda w, r: make(w, r, drop_some=False))
    ranks: list[list[list[int]]] = []
    for r in range(world):
        share = [order[p] for p in share_positions(n, 0, world, r, False)] if n else []
        ds = make(world, r)
        if share and all(x % 3 == 0 for x in share):
            with pytest.raises(PipelineError, match="nothing to pad"):
                list(ds)
            continue
        got = [[int(x) for x in b] for b in ds]
        assert len(flat(got)) == len(share), "one delivery per position of the share"
        assert all(x % 3 for x in flat(got)), "no dropped sample delivered"
        assert set(flat(got)) == {x for x in share if x % 3}, "every kept sample delivered"
        ranks.append(got)
    assert len({len(r) for r in ranks}) <= 1, "equal steps"


def not_multiple_of_3(x: int) -> bool:
    return x % 3 != 0


def fail_if_multiple_of_3(x: int) -> int:
    if x % 3 == 0:
        raise ValueError("corrupt")
    return x


def saved(state: dict[str, Any]) -> dict[str, Any]:
    return dict(pickle.loads(pickle.dumps(state)))


def elastic_epoch(make: Make, world: int, new_world: int, steps: int) -> tuple[list[int], list[list[int]]]:
    """Run `world` ranks for `steps` batches, save rank 0's state, resume `new_world` ranks from it.
    Returns (items consumed before the save, over all ranks; each new rank's items after it)."""
    before: list[int] = []
    state: dict[str, Any] | None = None
    for r in range(world):
        ds = make(world, r)
        it = iter(ds)
        for _ in range(steps):
            before += [int(x) for x in next(it)]
        if r == 0:
            state = saved(ds.state_dict())
        ds.close()
    assert state is not None
    after = []
    for r in range(new_world):
        ds = make(new_world, r)
        ds.load_state_dict(state)
        after.append([int(x) for b in ds for x in b])
        ds.close()
    return before, after


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("new_world", [1, 2, 3, 4])
def test_elastic_resume_from_every_step(world: int, new_world: int) -> None:
    for n, batch, drop in ((13, 2, False), (10, 1, True), (3, 2, False)):
        make = indexed(n, 11, drop, batch)
        check_elastic_exact(make, n, world, new_world, drop)
        check_elastic_exact(streamed(n, 11, drop, batch), n, world, new_world, drop)


def check_elastic_exact(make: Make, n: int, world: int, new_world: int, drop: bool) -> None:
    """The items consumed before the save are the order's first G positions; the new ranks deal the
    rest of the order from G over the new world (pads and drops as a fresh deal of that rest)."""
    order = global_order(make)
    share = len(share_positions(n, 0, world, 0, drop)) if n else 0
    batch = make(world, 0).specs()[-1].size  # type: ignore[attr-defined]
    for k in range(-(-share // batch) + 1):
        before, after = elastic_epoch(make, world, new_world, k)
        g = min(k * batch, share) * world  # positions consumed: a prefix of the order (pads past n)
        assert sorted(before) == sorted(order[p % n] for p in range(g))
        assert after == dealt(order, n, g, new_world, drop), f"{world} -> {new_world} ranks after step {k}"
        fresh = [after[r][: max(0, -(-(n - g - r) // new_world))] for r in range(new_world)]
        real = order[: min(g, n)] + [x for part in fresh for x in part]
        assert len(real) == len(set(real)), f"an item twice (not a pad), {world} -> {new_world} after {k}"
        if not drop:
            assert set(real) == set(range(n)), f"an item lost, {world} -> {new_world} after step {k}"


@SETTINGS
@given(world=st.integers(1, 4), new_world=st.integers(1, 4), n=st.integers(0, 25), batch=st.integers(1, 4),
       drop=st.booleans(), seed=st.integers(0, 999), stream=st.booleans())
def test_elastic_resume_property(world: int, new_world: int, n: int, batch: int, drop: bool, seed: int,
                                 stream: bool) -> None:
    check_elastic_exact((streamed if stream else indexed)(n, seed, drop, batch), n, world, new_world, drop)


def test_elastic_resume_with_a_filter_padded_in_lockstep() -> None:
    def make(w: int, r: int) -> cd.Dataset:
        return (cd.from_sequence(list(range(30))).shuffle(seed=2).shard(w, r).map(square, backend="inline")
                .filter(lambda x: x % 4 != 1).batch(3))

    kept = {x * x for x in range(30) if (x * x) % 4 != 1}
    for world, new_world in ((3, 2), (2, 4), (4, 1)):
        for k in range(len(make(world, 0)) + 1):  # every step boundary
            before, after = elastic_epoch(make, world, new_world, k)
            got = before + [x for a in after for x in a]
            assert set(got) == kept, f"{world} -> {new_world} after step {k}"


def test_a_state_from_another_seed_size_or_pipeline_names_the_mismatch() -> None:
    ds = indexed(20, 1, False, 2)(2, 0)
    it = iter(ds)
    next(it)
    state = saved(ds.state_dict())
    with pytest.raises(StateError, match=r"the shuffle seed differs \(this pipeline has shuffle\(seed=2\)"):
        indexed(20, 2, False, 2)(2, 0).load_state_dict(state)
    with pytest.raises(StateError, match=r"the data set \(its source or size\) differs .*\[21\]"):
        indexed(21, 1, False, 2)(2, 0).load_state_dict(state)
    with pytest.raises(StateError, match="drop_remainder"):
        indexed(20, 1, True, 2)(2, 0).load_state_dict(state)
    with pytest.raises(StateError, match="different pipeline"):
        cd.from_sequence(list(range(20))).shuffle(seed=1).batch(2).load_state_dict(state)


def test_elastic_resume_refuses_what_it_cannot_do_exactly() -> None:
    def after_shuffle(w: int, r: int) -> cd.Dataset:
        return cd.from_sequence(list(range(20))).shard(w, r).shuffle(seed=1, buffer_size=3).batch(2)

    ds = after_shuffle(2, 0)
    it = iter(ds)
    next(it)
    state = saved(ds.state_dict())
    with pytest.raises(StateError, match="reorders each rank's share"):
        after_shuffle(3, 0).load_state_dict(state)
    same = after_shuffle(2, 0)  # the same rank of the same world resumes exactly
    same.load_state_dict(state)
    assert len(list(same)) == len(after_shuffle(2, 0)) - 1


def test_shard_arguments_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    base = cd.from_sequence(list(range(10)))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert base.shard().describe().endswith("shard(rank 0 of 1)")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert base.shard().describe().endswith("shard(rank 2 of 4)")
    assert [int(x) for x in base.shard()] == [2, 6, 0]
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError, match="RANK"):
        base.shard()
    with pytest.raises(ConfigError, match="rank=4"):
        base.shard(4, 4)
    with pytest.raises(ConfigError, match="before .batch"):
        base.batch(2).shard(2, 0)
    with pytest.raises(ConfigError, match="one .shard"):
        base.shard(2, 0).shard(2, 1)
    with pytest.raises(ConfigError, match="after the batch"):
        iter(base.shard(2, 0).batch(2).filter(lambda b: True))


def test_shard_over_a_dataset_smaller_than_the_world() -> None:
    ranks = epoch_of(indexed(2, 0, False, 1), 5)
    assert [len(r) for r in ranks] == [1] * 5
    assert sorted(flat(ranks[0] + ranks[1])) == [0, 1]
    assert epoch_of(indexed(2, 0, True, 1), 5) == [[]] * 5
    assert epoch_of(indexed(0, 0, False, 1), 3) == [[]] * 3
    assert np.array_equal(share_positions(2, 0, 5, 4, False), [0])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=st.integers(1, 5), n=st.integers(0, 40), workers=st.integers(2, 3), seed=st.integers(0, 99))
def test_each_rank_gets_the_same_items_for_any_worker_count(world: int, n: int, workers: int,
                                                            seed: int) -> None:
    def ranks(w: int) -> list[list[Any]]:
        out = []
        for r in range(world):
            ds = (cd.from_sequence(list(range(n))).shuffle(seed=seed).shard(world, r)
                  .map(fail_if_multiple_of_3, workers=w, backend="thread", on_error="skip").map(Jitter())
                  .batch(3))
            try:
                out.append([plain(b) for b in ds])
            except PipelineError:  # a share with every sample dropped: the same for any worker count
                out.append(["nothing to pad"])
            ds.close()
        return out

    assert ranks(1) == ranks(workers)


def test_sharded_puts_the_shard_after_the_source_and_shuffle() -> None:
    base = cd.from_sequence(list(range(8))).map(square).shuffle(seed=1).map(arange16).batch(2)
    assert base.sharded(2, 1).describe() == ("from_sequence[8] -> map(square) -> shuffle(seed=1) -> "
                                             "shard(rank 1 of 2) -> map(arange16) -> batch(2)")
    assert cd.from_sequence([1]).map(square).sharded(3, 0).describe() == (
        "from_sequence[1] -> shard(rank 0 of 3) -> map(square)")
    already = base.sharded(2, 0)
    assert already.sharded(4, 3) is already
