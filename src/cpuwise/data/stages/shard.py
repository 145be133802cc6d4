"""shard: each rank of a distributed job takes its share of every epoch, in lockstep with the others.

    ds = cd.from_folder("train/").shuffle(seed=0).shard().map(decode).batch(256)   # in every rank

Every epoch is one global order (after `.shuffle(seed)`: the permutation of (seed, epoch)) dealt
round-robin: rank r takes positions r, r + W, r + 2W, ... So what all ranks have consumed after k
steps is a prefix of the order, ranks are disjoint, and their union is every item once per epoch.
Ranks get equal step counts: the last round is completed by wrap-around pads from the start of the
order (as torch's DistributedSampler pads) or dropped (`drop_remainder=True`). Equal steps also
survive `filter` and `on_error="skip"` after the shard: a dropped sample is replaced where it was
by the rank's previous sample (see `_lockstep`), so no rank runs short and no collective hangs.

Two ways to deal, chosen from what sits upstream:
- **by index** (an indexable source, then maps and at most one shuffle): the source reads only the
  rank's positions, so each rank decodes only its share and resumes in O(1);
- **by position** (an iterable source, a window shuffle, a filter or cache before the shard): every
  rank reads the whole upstream stream and keeps every W-th item; the last round is padded with the
  stream's first items (read again) or dropped. Put the expensive maps after the shard.

The world size and rank default to an initialised torch.distributed group, else the RANK and
WORLD_SIZE environment variables (torchrun sets them), else a single process (1, 0).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from cpuwise._schema import StageEntry
from cpuwise.data.stages._base import BuildContext, OrderStage, Spec, Stage, require_upstream, state_int
from cpuwise.data.stages._lockstep import Lockstep, PadStage
from cpuwise.data.stages.batch import BatchSpec
from cpuwise.data.stages.filter import FilterSpec
from cpuwise.data.stages.map import MapSpec
from cpuwise.data.stages.shuffle import GlobalShuffle, ShuffleSpec
from cpuwise.data.stages.source import IndexSource, SourceSpec
from cpuwise.errors import ConfigError, StateError


def share_length(remaining: int, world: int, drop_remainder: bool) -> int:
    """Items each rank takes from `remaining` items of an epoch's order."""
    return remaining // world if drop_remainder else -(-remaining // world)


def share_positions(n: int, start: int, world: int, rank: int, drop_remainder: bool) -> np.ndarray:
    """Positions (into an epoch's order of `n` items) that `rank` takes, dealing from `start`.

    Positions past the end wrap to the start of the order: the pads of the last round.
    """
    m = share_length(max(0, n - start), world, drop_remainder)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    return (start + rank + world * np.arange(m, dtype=np.int64)) % n


def default_world() -> tuple[int, int, str]:
    """(world_size, rank, where they came from): an initialised torch.distributed group, else the
    RANK / WORLD_SIZE environment variables, else (1, 0). torch is consulted only when the job has
    already imported it (importing cpuwise.data never imports torch)."""
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size()), int(dist.get_rank()), "torch.distributed"
    world, rank = os.environ.get("WORLD_SIZE"), os.environ.get("RANK")
    if world is None and rank is None:
        return 1, 0, "default"
    try:
        w, r = int(world if world is not None else "1"), int(rank if rank is not None else "0")
    except ValueError:
        raise ConfigError(f"shard: expected integer WORLD_SIZE and RANK environment variables, found "
                          f"WORLD_SIZE={world!r} RANK={rank!r}. Fix: pass shard(world_size, rank).") from None
    return w, r, "the WORLD_SIZE/RANK environment variables"


def index_dealt(chain: Sequence[Spec], at: int) -> bool:
    """True when the shard at `chain[at]` deals by index: an indexable source, then only maps and at
    most one shuffle (which then permutes the source itself)."""
    src = chain[0]
    between = chain[1:at]
    return (isinstance(src, SourceSpec) and src.seq is not None
            and all(isinstance(s, (MapSpec, ShuffleSpec)) for s in between)
            and sum(isinstance(s, ShuffleSpec) for s in between) <= 1)


def lockstep_start(chain: Sequence[Spec]) -> tuple[int, int] | None:
    """(first, end): the specs of `chain` (flat indices) whose drops become markers, and where the
    PadStage goes (the first batch after the shard, else the end). None without a shard."""
    at = next((i for i, s in enumerate(chain) if isinstance(s, ShardSpec)), None)
    if at is None:
        return None
    end = next((i for i in range(at + 1, len(chain)) if isinstance(chain[i], BatchSpec)), len(chain))
    return (1 if index_dealt(chain, at) else at + 1), end


def drops(spec: Spec) -> bool:
    """True for a spec that may drop samples (a filter, a map that skips failures)."""
    return isinstance(spec, FilterSpec) or (isinstance(spec, MapSpec) and spec.on_error == "skip")


@dataclass(frozen=True, eq=False)
class ShardSpec(Spec):
    """shard(world_size, rank, drop_remainder): this rank's share of each epoch."""

    world_size: int
    rank: int
    drop_remainder: bool
    kind: ClassVar[str] = "shard"

    def describe(self) -> str:
        tail = ", drop_remainder" if self.drop_remainder else ""
        return f"shard(rank {self.rank} of {self.world_size}{tail})"

    def fingerprint(self) -> str:
        # not the world size or rank: a state saved by any rank of any world size resumes this one
        return f"shard({'drop_remainder' if self.drop_remainder else 'pad'})"

    def length(self, upstream: int | None) -> int | None:
        return None if upstream is None else share_length(upstream, self.world_size, self.drop_remainder)

    def prepare(self, ctx: BuildContext) -> None:
        chain = [s for g in ctx.groups for s in g]
        span = lockstep_start(chain)
        assert span is not None
        first, end = span
        late = [s.describe() for s in chain[end + 1:] if drops(s)]
        if late:
            raise ConfigError(
                f"shard: expected no stage that drops items after the batch, found {late} after "
                f"{chain[end].describe()}: ranks would run different numbers of steps. Fix: filter "
                "samples before .batch() (after .shard(), dropped samples are padded in lockstep)."
            )
        starts = np.cumsum([0] + [len(g) for g in ctx.groups])  # flat index of each group's first spec
        ctx.lock = lock = Lockstep(self.world_size, self.rank)
        ctx.lockstep = (int(np.searchsorted(starts, first)), int(np.searchsorted(starts, end)))
        ctx.wraps[ctx.lockstep[1]] = lambda up: PadStage(up, lock)

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        up = require_upstream(upstream, self)
        lock = ctx.lock
        assert isinstance(lock, Lockstep), "prepare() made the lockstep before the build"
        # random maps after the shard draw from a seed of their own per rank: rank 0's i-th sample
        # and rank 1's i-th sample must not get the same crop
        ctx.seed = (ctx.seed * 1_000_003 + 7919 * (self.rank + 1)) & 0xFFFFFFFF
        source = _index_source(up)
        chain = [s for g in ctx.groups for s in g]
        if index_dealt(chain, chain.index(self)) != (source is not None):
            raise AssertionError("shard: the static and the built dealing modes disagree")
        if source is not None:
            return IndexShard(self.describe(), up, source, lock, self.drop_remainder)
        return StreamShard(self.describe(), up, lock, self.drop_remainder)


def _index_source(stage: Stage) -> IndexSource | None:
    """The IndexSource under `stage` through per-sample stages and a global shuffle, else None."""
    while stage.per_sample or isinstance(stage, GlobalShuffle):
        assert stage.upstream is not None
        stage = stage.upstream
    return stage if isinstance(stage, IndexSource) else None


class _ShardBase(Stage):
    kind = "shard"

    def __init__(self, name: str, upstream: Stage, lock: Lockstep, drop_remainder: bool) -> None:
        super().__init__(name, upstream)
        self.lock, self.drop_remainder = lock, drop_remainder

    def stats_entries(self, wall: float) -> list[StageEntry]:
        rows = super().stats_entries(wall)
        if self.lock.pads:  # samples dropped after the shard, replaced in lockstep
            rows[0].name = f"{rows[0].name} [{self.lock.pads} dropped, padded]"
        return rows


class IndexShard(OrderStage, _ShardBase):
    """Deals by index: the source reads this rank's positions of the (shuffled) order."""

    def __init__(self, name: str, upstream: Stage, source: IndexSource, lock: Lockstep,
                 drop_remainder: bool) -> None:
        super().__init__(name, upstream, lock, drop_remainder)
        n = len(source.seq)
        base: Callable[[], np.ndarray | None] | None = source.order_fn

        def order() -> np.ndarray:  # captures values, not self: no reference cycle
            seg = lock.segment
            mine = share_positions(n, seg.start, seg.world, seg.rank, drop_remainder)
            perm = base() if base is not None else None
            return mine if perm is None else perm[mine]

        source.order_fn = order


class StreamShard(_ShardBase):
    """Deals by position: reads whole rounds of `world` items and keeps the rank's one."""

    ROUNDS_KEY = "rounds"
    ENDED_KEY = "ended"

    def __init__(self, name: str, upstream: Stage, lock: Lockstep, drop_remainder: bool) -> None:
        super().__init__(name, upstream, lock, drop_remainder)
        self._rounds = 0  # rounds dealt in the segment
        self._ended = False

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        assert self.upstream is not None
        seg = self.lock.segment
        self._rounds, self._ended = 0, False
        if initial_state is not None:
            self._ended = bool(initial_state.get(self.ENDED_KEY, False))
            self._rounds = state_int(initial_state, self.ROUNDS_KEY, self.name)
            if not self._ended:
                self.reset_upstream(initial_state)
            return
        self.upstream.reset(None)
        for done in range(seg.start):  # an elastic resume: skip what the saved job consumed
            try:
                self.upstream.__next__()
            except StopIteration:
                if seg.start - done <= seg.slack:  # the saved job was padding its last round: done
                    self._ended = True
                    return
                raise StateError(f"shard: the state resumes at item {seg.start} of the epoch's stream, "
                                 f"but the stream ended after {done} items. Fix: resume over the same "
                                 "data (the source must yield the same items each epoch).") from None

    def next(self) -> Any:
        assert self.upstream is not None
        if self._ended:
            raise StopIteration
        seg = self.lock.segment
        mine: Any = None
        got = 0
        while got < seg.world:
            try:
                item = self.upstream.__next__()
            except StopIteration:
                break
            if got == seg.rank:
                mine = item
            got += 1
        if got == seg.world:
            self._rounds += 1
            return mine
        self._ended = True  # the stream ended inside this round (or before it)
        if got == 0 or self.drop_remainder:
            raise StopIteration
        if seg.rank < got:
            return mine
        round_start = seg.start + self._rounds * seg.world
        return self._read_at((round_start + seg.rank) % (round_start + got))

    def _read_at(self, index: int) -> Any:
        """Item `index` of the epoch's stream, read again: a wrap-around pad of the last round."""
        assert self.upstream is not None
        self.upstream.reset(None)
        for _ in range(index):
            self.upstream.__next__()
        return self.upstream.__next__()

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        if self._ended:
            return {self.ROUNDS_KEY: self._rounds, self.ENDED_KEY: True}
        return {self.UPSTREAM_KEY: self.upstream.get_state(), self.ROUNDS_KEY: self._rounds}
