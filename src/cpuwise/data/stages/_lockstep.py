"""Lockstep: how a sharded pipeline keeps every rank at the same position of the global order.

Ranks must run the same number of steps (or a collective op hangs), and one rank's state must be
enough to resume all of them (elastic resume). Both hold when each rank delivers exactly one item per
position of its share, so after a shard:

- a stage that would drop a sample (`filter`, `map(on_error="skip")`) hands on a `Dropped` marker in
  its place, and maps pass markers through without running (`KeepDropped`);
- `PadStage`, which the build puts right before the batch (or last, unbatched), replaces each marker
  with the rank's last real sample: a pad, like DistributedSampler's wrap-around pads. A marker
  before any real sample is replaced by the next real one.

So the items a rank has handed to `batch` are always the first `count` positions of its share, and
`count` (in PadStage's state) says how far the whole job is: `start + count * world` items of the
epoch's order (see `Segment`). The pads cost duplicates, never a position: no rank runs short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cpuwise.data.stages._base import Stage, state_fields, state_int, state_list, state_sub
from cpuwise.errors import PipelineError, StateError


class Dropped:
    """Stands in a sharded pipeline for a sample a filter or a skipping map dropped."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (Dropped, (self.name,))

    def __repr__(self) -> str:
        return f"Dropped({self.name!r})"


class KeepDropped:
    """A map function that hands a Dropped marker on untouched (runs in the workers)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.needs_rng = bool(getattr(fn, "needs_rng", False))

    def __call__(self, sample: Any, *rng: Any) -> Any:
        if isinstance(sample, Dropped):
            return sample
        return self.fn(sample, *rng)


@dataclass(frozen=True)
class Segment:
    """The part of an epoch's global order being dealt: from position `start`, round-robin over
    `world` ranks (rank r takes start + r, start + r + world, ...). An epoch starts with one segment
    (start 0); an elastic resume starts a new one where the saved job stopped."""

    start: int
    world: int
    rank: int
    # how far `start` may lie past the end of the epoch's stream: the pads of the saved job's last
    # round (a stream's length is known only at its end)
    slack: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"start": self.start, "world": self.world, "rank": self.rank, "slack": self.slack}

    @classmethod
    def from_state(cls, state: Any, stage: str) -> Segment:
        fields = state_fields(state, stage, "start", "world", "rank")
        world = state_int(fields, "world", stage, 1)
        slack = state_int(fields, "slack", stage) if "slack" in fields else 0
        return cls(state_int(fields, "start", stage), world, state_int(fields, "rank", stage, 0, world - 1),
                   slack)


class Lockstep:
    """What the shard and its PadStage share in one built pipeline: the segment being dealt."""

    def __init__(self, world: int, rank: int) -> None:
        self.default = Segment(0, world, rank)
        self.segment = self.default
        self.pads = 0  # pads delivered (stats)


class PadStage(Stage):
    """Replaces Dropped markers with the rank's last real sample; counts the positions delivered."""

    SEGMENT_KEY = "lockstep"
    COUNT_KEY = "count"
    LAST_KEY = "last"
    OWED_KEY = "owed"
    kind = "pad"

    def __init__(self, upstream: Stage, lock: Lockstep) -> None:
        super().__init__("lockstep pads", upstream)
        self.lock = lock
        self._count = 0  # positions of the current segment handed on
        self._last: list[Any] = []  # the last real sample (the pad), when there was one
        self._owed = 0  # deliveries of _last still due after reading ahead past markers

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        assert self.upstream is not None
        self._count, self._last, self._owed = 0, [], 0
        if initial_state is None:
            self.lock.segment = self.lock.default
            self.upstream.reset(None)
            return
        seg = Segment.from_state(state_fields(initial_state, self.name, self.SEGMENT_KEY)[self.SEGMENT_KEY],
                                 self.name)
        if (seg.world, seg.rank) != (self.lock.default.world, self.lock.default.rank):
            mine = self.lock.default
            raise StateError(f"stage '{self.name}': expected a segment dealt to rank {mine.rank} of "
                             f"{mine.world}, found rank {seg.rank} of {seg.world}. Fix: load a state that "
                             "ds.state_dict() saved (load_state_dict rebases another rank's).")
        self.lock.segment = seg
        self._count = state_int(initial_state, self.COUNT_KEY, self.name)
        self._last = state_list(initial_state, self.LAST_KEY, self.name, 1)
        self._owed = state_int(initial_state, self.OWED_KEY, self.name)
        if self._owed and not self._last:
            raise StateError(f"stage '{self.name}': expected a sample to deliver {self._owed} more "
                             "times, found none. Fix: load a state saved from this pipeline.")
        # None: an elastic resume starts the rank's share afresh at the segment's start
        up = initial_state.get(self.UPSTREAM_KEY)
        self.upstream.reset(None if up is None else state_sub(initial_state, self.UPSTREAM_KEY, self.name))

    def next(self) -> Any:
        assert self.upstream is not None
        if self._owed:
            self._owed -= 1
            self._count += 1
            return self._last[0]
        item = self.upstream.__next__()
        if not isinstance(item, Dropped):
            self._last = [item]
            self._count += 1
            return item
        if self._last:
            self.lock.pads += 1
            self._count += 1
            return self._last[0]
        markers = 1  # nothing real yet: read ahead to the next real sample and deliver it for each
        while True:
            try:
                item = self.upstream.__next__()
            except StopIteration:
                seg = self.lock.segment
                raise PipelineError(
                    f"shard: rank {seg.rank} of {seg.world} dropped every sample of its share this epoch "
                    f"({markers} dropped by filter / on_error='skip'), so it has nothing to pad its "
                    "steps with and would run fewer steps than the other ranks. Fix: check the filter "
                    "and the failing samples (ds.stats() names them), or filter before .shard()."
                ) from None
            if not isinstance(item, Dropped):
                break
            markers += 1
        self.lock.pads += markers
        self._last, self._owed = [item], markers
        self._count += 1
        return item

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        return {self.SEGMENT_KEY: self.lock.segment.to_dict(), self.COUNT_KEY: self._count,
                self.LAST_KEY: list(self._last), self.OWED_KEY: self._owed,
                self.UPSTREAM_KEY: self.upstream.get_state()}

    def stats_entries(self, wall: float) -> list[Any]:
        return []  # its time is the stage after it's; the pads are counted in the shard's row


def find_pad_state(stages: Any) -> dict[str, Any] | None:
    """The PadStage's state inside a pipeline's nested stage state (following the upstream links)."""
    node = stages
    while isinstance(node, dict):
        if PadStage.SEGMENT_KEY in node:
            return node
        node = node.get(Stage.UPSTREAM_KEY)
    return None
