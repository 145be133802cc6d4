"""The contract every pipeline stage follows: a Spec describes it, a Stage runs it (torchdata.nodes style).

A **Spec** is what a Dataset method records: an immutable description (a frozen dataclass) that
names its `kind` (which registers it), describes itself for fingerprints and stats, states how it
changes the epoch's length, and `build(upstream, ctx)`s a live Stage for one iterator. It holds no
live objects: pools and cache records belong to the runtime (`ctx.shared()`).

A **Stage** is an iterator over samples with three methods to implement:

    reset(initial_state)  start an epoch, or resume from a `get_state()` snapshot
    next()                the next sample, or raise StopIteration
    get_state()           a small dict: feeding it to `reset` yields exactly the samples not yet
                          delivered, in the same order

The base class times every `next()` (inclusive time, for `ds.stats()`), checks that subclasses
called `super().__init__()`, and refuses `next()` before the first `reset()`. State keys are class
constants (`UPSTREAM_KEY`), so a typo is a NameError rather than a silent mismatch. `stats_entries`
gives the stage's rows of `ds.stats()["stages"]`; the default suits a stage that works in the
consumer's thread.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from cpuwise._schema import StageEntry
from cpuwise.data._runtime.shared import Shared, shared_by
from cpuwise.errors import PipelineError, StateError

REGISTRY: dict[str, type[Spec]] = {}  # stage kind -> its Spec class, filled as stage modules load


class EpochClock:
    """The epoch a stage sees. The pipeline owns the root clock; each repeat() adds a pass counter,
    so stages above a repeat reshuffle and redraw random transforms on every pass."""

    PASS_SPAN = 1 << 20  # passes per outer epoch when repeat(None) runs forever

    def __init__(self, parent: EpochClock | None = None, n: int | None = None) -> None:
        self.parent, self.n = parent, n
        self.value = 0  # the root's epoch, or this repeat's pass

    def __call__(self) -> int:
        if self.parent is None:
            return self.value
        return self.parent() * (self.n or self.PASS_SPAN) + self.value


@dataclass
class BuildContext:
    """What `Spec.build` gets besides its upstream stage; the runtime's build loop fills it in."""

    cpu_budget: float  # cores the whole pipeline may use
    groups: list[list[Spec]]  # the chain as the stages it builds into (consecutive maps fuse into one)
    index: int = 0  # the group being built
    epoch: EpochClock = field(default_factory=EpochClock)  # the clock of the group being built
    seed: int = 0  # the last shuffle's seed: random maps derive theirs from it
    n_random: int = 0  # random maps built since that shuffle
    # set by a spec's prepare(), before any stage is built:
    lockstep: tuple[int, int] | None = None  # groups [first, end) whose drops become markers (shard)
    lock: Any = None  # what a shard shares with the stages of its lockstep
    wraps: dict[int, Callable[[Any], Any]] = field(default_factory=dict)  # group index -> a stage to
    # put between the stage built before that group and the group (len(groups): after the last)

    @property
    def in_lockstep(self) -> bool:
        """True when the group being built must hand on a marker for each sample it drops."""
        return self.lockstep is not None and self.lockstep[0] <= self.index < self.lockstep[1]

    @property
    def group(self) -> list[Spec]:
        """The specs the stage being built runs: [spec], or a group of fused maps."""
        return self.groups[self.index]

    def upstream_specs(self) -> list[Spec]:
        """Every spec before the stage being built (a cache fingerprints them)."""
        return [s for g in self.groups[: self.index] for s in g]

    def shared(self) -> Shared:
        """What the runtime keeps for the spec being built, across iterators: pools, a cache record."""
        return shared_by(self.group[0])


class Spec:
    """An immutable description of one stage; subclasses are frozen dataclasses.

    Subclasses set `kind` (that registers them) and implement `describe()` and `build()`; they
    override `length()` when they change the number of items, `fuses()` when one stage runs several
    consecutive specs (maps), and `epoch_clock()` when the stages upstream see another epoch (repeat).
    """

    kind: ClassVar[str] = "spec"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if not isinstance(kind, str):
            raise TypeError(f"{cls.__name__}: expected a stage kind (kind = 'take'), found {kind!r}. "
                            "Fix: set kind as a class attribute of the Spec subclass.")
        known = REGISTRY.get(kind)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(f"{cls.__qualname__}: stage kind {kind!r} is taken by {known.__module__}."
                            f"{known.__qualname__}. Fix: give the new stage its own kind.")
        REGISTRY[kind] = cls

    def describe(self) -> str:
        """The stage as the user wrote it (`batch(32)`): in stats, errors and state fingerprints."""
        raise NotImplementedError(f"{type(self).__name__} must implement describe() (the Spec contract)")

    def fingerprint(self) -> str:
        """What a state records of this stage: a state loads only into a pipeline with the same ones."""
        return self.describe()

    def prepare(self, ctx: BuildContext) -> None:
        """Called on every group's first spec before any stage is built (`ctx.index` is its group):
        a spec may set facts the stages before it need (a shard: which of them run in lockstep)."""

    def length(self, upstream: int | None) -> int | None:
        """Items per epoch after this stage, given `upstream` items (None: not known in advance)."""
        return upstream

    def fuses(self, nxt: Spec) -> bool:
        """True when the stage this spec starts also runs `nxt`, the spec right after it."""
        return False

    def epoch_clock(self, downstream: EpochClock) -> EpochClock:
        """The clock this stage and everything upstream of it see, given the one downstream sees."""
        return downstream

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        """A live stage for one iterator, pulling from `upstream` (None for a source)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build() (the Spec contract)")


def require_upstream(upstream: Stage | None, spec: Spec) -> Stage:
    """`upstream`, which every stage but a source needs."""
    if upstream is None:
        raise PipelineError(f"{spec.describe()}: expected a stage upstream, found none. Fix: start the "
                            "pipeline with a source (cd.from_sequence, from_folder, ...).")
    return upstream


class LazyState:
    """A part of a stage's state that is cheap to take and built in full only when read.

    Stages hand out their state after every item (a prefetch thread keeps the state after each
    item it reads ahead), so a state must cost O(1) to take. A part that would be costly to copy (a
    shuffle window's buffer) is returned as a LazyState; `materialized()` builds it when a user asks
    for `ds.state_dict()`, and pickling or deep-copying one builds it too, so it never leaks out.
    """

    __slots__ = ()

    def materialize(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement materialize()")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_plain, (self.materialize(),))

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self.materialize(), memo)


def _plain(value: Any) -> Any:
    return value


def materialized(state: Any) -> Any:
    """`state` with every LazyState in it (as a dict value, at any depth) built into its value."""
    if isinstance(state, LazyState):
        return state.materialize()
    if isinstance(state, dict):
        return {k: materialized(v) for k, v in state.items()}
    return state


def _bad_state(stage: str, what: str, found: str) -> StateError:
    return StateError(f"stage '{stage}': expected {what} in its state, found {found}. Fix: load a state "
                      "that ds.state_dict() saved from this same pipeline (the checkpoint may be damaged).")


def state_fields(state: Any, stage: str, *keys: str) -> dict[str, Any]:
    """`state` itself, checked to be a dict holding every key in `keys`."""
    if not isinstance(state, dict):
        raise _bad_state(stage, f"a dict with keys {list(keys)}", type(state).__name__)
    missing = [k for k in keys if k not in state]
    if missing:
        raise _bad_state(stage, f"the key(s) {missing}", f"keys {sorted(map(str, state))}")
    return state


def state_int(state: Any, key: str, stage: str, lo: int = 0, hi: int | None = None) -> int:
    """The int field `key` of a stage's state, checked to lie in [lo, hi] (a loaded state is untrusted:
    a negative skip would re-deliver items, a huge one silently drop them)."""
    value = state_fields(state, stage, key)[key]
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or value < lo or (hi is not None and value > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise _bad_state(stage, f"{key} an int {bound}", f"{key}={value!r}")
    return int(value)


def state_sub(state: Any, key: str, stage: str) -> dict[str, Any]:
    """The nested state `key` (an upstream stage's state: a dict) of a stage's state."""
    value = state_fields(state, stage, key)[key]
    if not isinstance(value, dict):
        raise _bad_state(stage, f"{key} a dict (the upstream stage's state)", type(value).__name__)
    return value


def state_list(state: Any, key: str, stage: str, max_len: int | None = None) -> list[Any]:
    """The list field `key` of a stage's state (absent: empty), at most `max_len` long."""
    value = state_fields(state, stage)[key] if isinstance(state, dict) and key in state else []
    if not isinstance(value, (list, tuple)) or (max_len is not None and len(value) > max_len):
        bound = f" of at most {max_len} items" if max_len is not None else ""
        raise _bad_state(stage, f"{key} a list{bound}",
                         f"{type(value).__name__}" + (f" of {len(value)}" if isinstance(value, list) else ""))
    return list(value)


class StageStats:
    """Plain counters a stage accumulates; read by `stats_entries`."""

    __slots__ = ("items", "next_time_s", "work_time_s", "errors", "skipped", "skipped_count")

    MAX_NAMES = 1000  # keep the skipped-name list bounded on a badly corrupt data set

    def __init__(self) -> None:
        self.items = 0
        self.next_time_s = 0.0  # inclusive time spent inside next() (includes upstream)
        self.work_time_s = 0.0  # this stage's own work (worker time for map)
        self.errors = 0
        self.skipped: list[str] = []
        self.skipped_count = 0

    def skip(self, name: str) -> None:
        self.errors += 1
        self.skipped_count += 1
        if len(self.skipped) < self.MAX_NAMES:
            self.skipped.append(name)


def stage_entry(name: str, kind: str, items: int, time_s: float, wall: float, inclusive_s: float,
                workers: int | None, st: StageStats) -> StageEntry:
    """One row of `ds.stats()["stages"]`.

    Args:
        time_s: the stage's own work (worker seconds for maps, exclusive time otherwise).
        inclusive_s: the time its consumer spent blocked on it; over `wall`, its wait_ratio.
    """
    return StageEntry(name=name, kind=kind, items=int(items), time_s=round(time_s, 6),
                      per_item_ms=round(1000.0 * time_s / items, 4) if items else 0.0,
                      wait_ratio=round(min(1.0, inclusive_s / wall), 4) if wall > 0 else 0.0,
                      workers=workers, errors=st.errors, skipped=list(st.skipped))


class Stage:
    """Base class of pipeline stages. Subclasses implement reset / next / get_state."""

    UPSTREAM_KEY = "up"
    kind = "stage"
    # True for a stage whose items come from workers or a thread: the time inside its next() is
    # waiting, not its upstream's work added up, so the stage after it reports its own work time.
    runs_ahead = False
    # True when each output is computed from one input, in input order (a map): a shuffle after
    # this stage may permute its source instead of buffering its outputs.
    per_sample = False

    def __init__(self, name: str, upstream: Stage | None = None) -> None:
        self.name = name
        self.upstream = upstream
        self.stats = StageStats()
        self._initialized = True
        self._was_reset = False

    # --- the contract --------------------------------------------------------------------------
    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        """Start over (initial_state None) or resume from a get_state() snapshot."""
        if not getattr(self, "_initialized", False):
            raise PipelineError(
                f"{type(self).__name__}.__init__ did not call super().__init__(); expected the Stage "
                "base initialised, found it missing. Fix: call super().__init__(name, upstream) first."
            )
        self._was_reset = True

    def next(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement next() (the Stage contract)")

    def get_state(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement get_state() (the Stage contract)")

    # --- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Release threads / in-flight work; the default closes upstream."""
        if self.upstream is not None:
            self.upstream.close()

    def stages(self) -> list[Stage]:
        """This stage and everything upstream, source first."""
        out: list[Stage] = [] if self.upstream is None else self.upstream.stages()
        out.append(self)
        return out

    # --- reporting ------------------------------------------------------------------------------
    def stats_entries(self, wall: float) -> list[StageEntry]:
        """This stage's rows of `ds.stats()["stages"]` after `wall` seconds of iteration."""
        own = self.stats.next_time_s
        up = self.upstream
        if up is not None and not up.runs_ahead:
            own -= up.stats.next_time_s
        elif up is not None:
            own = self.stats.work_time_s
        return [stage_entry(self.name, self.kind, self.stats.items, max(0.0, own), wall,
                            self.stats.next_time_s, None, self.stats)]

    # --- the iterator protocol ---------------------------------------------------------------
    def __iter__(self) -> Stage:
        return self

    def __next__(self) -> Any:
        if not self._was_reset:
            raise PipelineError(
                f"stage '{self.name}' was iterated before reset(); expected reset(None) or "
                "reset(state) first. Fix: iterate the Dataset (iter(ds)), not a bare stage."
            )
        t0 = time.perf_counter()
        try:
            item = self.next()
        finally:
            self.stats.next_time_s += time.perf_counter() - t0
        self.stats.items += 1
        return item

    def reset_upstream(self, initial_state: dict[str, Any] | None) -> None:
        """Reset the upstream stage from this stage's snapshot (or from the start when None)."""
        assert self.upstream is not None
        if initial_state is None:
            self.upstream.reset(None)
            return
        self.upstream.reset(state_sub(initial_state, self.UPSTREAM_KEY, self.name))


class OrderStage(Stage):
    """A stage whose work is done on the source's read order at build time (a global shuffle, an index
    shard): at run time it passes its upstream's items and state through unchanged."""

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        self.reset_upstream(initial_state)

    def next(self) -> Any:
        assert self.upstream is not None
        return self.upstream.__next__()

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        return {self.UPSTREAM_KEY: self.upstream.get_state()}
