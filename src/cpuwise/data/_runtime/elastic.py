"""Elastic resume: a state saved by one rank of W resumes any rank of W' exactly.

Ranks of a sharded pipeline advance in lockstep (stages/_lockstep.py), so the items all ranks have
handed on are a prefix of the epoch's global order, of length `consumed = start + count * world`
(the segment and count of the saving rank's PadStage). A state records that prefix in its "shard"
record, with the seed, the data set size and the world it was saved in. Loading it into a pipeline of
another world size or rank starts a new segment at `consumed`: the stages from the source to the
PadStage start afresh (state None) dealing the rest of the order over the new world, and the stages
after it (batch, prefetch, repeat, take) keep their saved positions. Over all ranks, the items
consumed before the save plus those after it are every item of the epoch exactly once (pads aside).

Where that cannot hold, loading says so (StateError) instead of duplicating items: a shuffle or a
cache after the shard (what was consumed is not a prefix), a repeat between the shard and the batch,
or a state saved with items held between steps (a partial batch, a window buffer after the shard).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cpuwise.data.stages._base import Spec, Stage, state_int
from cpuwise.data.stages._lockstep import PadStage, Segment, find_pad_state
from cpuwise.data.stages.cache import CacheSpec
from cpuwise.data.stages.repeat import RepeatSpec
from cpuwise.data.stages.shard import ShardSpec, lockstep_start
from cpuwise.data.stages.shuffle import ShuffleSpec
from cpuwise.errors import StateError

SHARD_KEY = "shard"


def shard_record(chain: Sequence[Spec], stages: Any) -> dict[str, Any] | None:
    """The "shard" record of a state: the world it was saved in and the global items consumed."""
    at = next((i for i, s in enumerate(chain) if isinstance(s, ShardSpec)), None)
    if at is None:
        return None
    spec = chain[at]
    assert isinstance(spec, ShardSpec)
    shuffles = [s for s in chain[:at] if isinstance(s, ShuffleSpec)]
    size: int | None = None
    for s in chain[:at]:
        size = s.length(size)
    consumed: int | None = 0
    if stages is not None:
        pad = find_pad_state(stages)
        consumed = None
        if pad is not None:
            seg = Segment.from_state(pad[PadStage.SEGMENT_KEY], "lockstep pads")
            consumed = seg.start + state_int(pad, PadStage.COUNT_KEY, "lockstep pads") * seg.world
    return {"world_size": spec.world_size, "rank": spec.rank, "drop_remainder": spec.drop_remainder,
            "seed": shuffles[-1].seed if shuffles else None, "size": size, "consumed": consumed}


def blockers(chain: Sequence[Spec]) -> list[str]:
    """Why the consumed items of this pipeline are not a prefix of the global order (empty: they are)."""
    at = next(i for i, s in enumerate(chain) if isinstance(s, ShardSpec))
    span = lockstep_start(chain)
    assert span is not None
    out = []
    for i, s in enumerate(chain[at + 1:], start=at + 1):
        if isinstance(s, ShuffleSpec):
            out.append(f"{s.describe()} after the shard reorders each rank's share (shuffle before .shard())")
        elif isinstance(s, CacheSpec):
            out.append(f"{s.describe()} after the shard records one rank's share")
        elif isinstance(s, RepeatSpec) and i < span[1]:
            out.append(f"{s.describe()} between the shard and the batch (repeat after .batch())")
    return out


def _held_items(stages: Any) -> list[str]:
    """Stage states between the top and the PadStage that hold items of the saving rank's share."""
    out = []
    node = stages
    while isinstance(node, dict) and PadStage.SEGMENT_KEY not in node:
        for key in ("partial", "buffer"):
            if node.get(key):
                out.append(f"{len(node[key])} item(s) in a stage's '{key}'")
        node = node.get(Stage.UPSTREAM_KEY)
    return out


def rebase(chain: Sequence[Spec], state: dict[str, Any]) -> dict[str, Any]:
    """`state` (checked by check_top_level) made loadable into the pipeline `chain`: unchanged when
    it was saved by the same rank of the same world size, else rebased onto a new segment."""
    at = next((i for i, s in enumerate(chain) if isinstance(s, ShardSpec)), None)
    if at is None:
        return state
    spec = chain[at]
    assert isinstance(spec, ShardSpec)
    rec = state.get(SHARD_KEY)
    if not isinstance(rec, dict):
        raise StateError(f"load_state_dict: expected a state of a sharded pipeline (with a '{SHARD_KEY}' "
                         f"record), found {type(rec).__name__}. Fix: load a state that ds.state_dict() saved "
                         "from this pipeline.")
    here = shard_record(chain, None)
    assert here is not None
    facts = (("seed", "shuffle seed"), ("size", "data set size"), ("drop_remainder", "drop_remainder"))
    for key, what in facts:
        if rec.get(key) != here[key]:
            raise StateError(f"load_state_dict: the state was saved with {what} {rec.get(key)!r}, this "
                             f"pipeline has {here[key]!r}. Fix: build the pipeline over the same data with "
                             "the same seed before loading.")
    world, rank = rec.get("world_size"), rec.get("rank")
    if not (isinstance(world, int) and isinstance(rank, int) and world >= 1 and 0 <= rank < world):
        raise StateError(f"load_state_dict: expected the saving rank and world size in the state's "
                         f"'{SHARD_KEY}' record, found world_size={world!r} rank={rank!r}. Fix: load a state "
                         "that ds.state_dict() saved.")
    if state["stages"] is None or (world, rank) == (spec.world_size, spec.rank):
        return state
    why = blockers(chain)
    pad = find_pad_state(state["stages"])
    if pad is None:
        why.append("the state has no lockstep position (a cache serving its record)")
    else:
        why += _held_items(state["stages"])
        if pad.get(PadStage.OWED_KEY):
            why.append("it was saved while a sample owed pads to dropped samples before it")
    if why:
        raise StateError(
            f"load_state_dict: a state saved by rank {rank} of {world} cannot resume rank {spec.rank} of "
            f"{spec.world_size} exactly: " + "; ".join(why) + ". Fix: resume with the same world size, "
            "each rank loading its own state, or change the pipeline as said."
        )
    assert pad is not None
    seg = Segment.from_state(pad[PadStage.SEGMENT_KEY], "lockstep pads")
    consumed = seg.start + state_int(pad, PadStage.COUNT_KEY, "lockstep pads") * seg.world
    fresh = {PadStage.SEGMENT_KEY: Segment(consumed, spec.world_size, spec.rank, seg.world - 1).to_dict(),
             PadStage.COUNT_KEY: 0, PadStage.LAST_KEY: list(pad.get(PadStage.LAST_KEY) or []),
             PadStage.OWED_KEY: 0, Stage.UPSTREAM_KEY: None}
    out = dict(state)
    out[SHARD_KEY] = {**here, "consumed": consumed}
    out["stages"] = _replace(state["stages"], pad, fresh)
    return out


def _replace(node: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A copy of the nested stage state `node` with the dict `old` (on its upstream path) replaced."""
    if node is old:
        return new
    copy = dict(node)
    copy[Stage.UPSTREAM_KEY] = _replace(node[Stage.UPSTREAM_KEY], old, new)
    return copy
