"""What each chained call records: immutable stage specs, built into live stages per iterator.

A Dataset is a chain of specs; `build()` turns it into stages. Consecutive map() calls fuse into
one worker group (one IPC hop for decode + crop + flip) unless the later call pins its own
workers/backend/budget. A map group's worker pool lives on its first spec, so every iterator and
every Dataset derived from it reuse the same warm workers; the pool shuts down when the last
Dataset holding the spec is garbage-collected (or on ds.close(), or at exit).
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cpuwise.data._naming import fn_name
from cpuwise.data.transform import needs_rng

log = logging.getLogger("cpuwise.data")


class Spec:
    kind = "spec"

    def describe(self) -> str:
        return self.kind


@dataclass(eq=False)
class SourceSpec(Spec):
    name: str
    seq: Sequence[Any] | None = None
    factory: Callable[[], Any] | None = None
    one_shot: bool = False
    classes: list[str] | None = None
    kind = "source"

    def describe(self) -> str:
        n = f"[{len(self.seq)}]" if self.seq is not None else ""
        return f"{self.name}{n}"


@dataclass(eq=False)
class ShuffleSpec(Spec):
    seed: int
    buffer_size: int
    kind = "shuffle"

    def describe(self) -> str:
        return f"shuffle(seed={self.seed})"


@dataclass(eq=False)
class MapSpec(Spec):
    fn: Any
    on_error: str
    workers: int | str
    backend: str
    cpu_budget: float | None
    name: str
    kind = "map"
    pools: dict[tuple[int, ...], list[Any]] = field(default_factory=dict)

    def describe(self) -> str:
        return f"map({self.name})"

    def fuses_into(self, first: MapSpec) -> bool:
        """Run in the same workers as the group that `first` starts: when this map leaves every
        setting at its default, or repeats the group's settings exactly."""
        if self.workers == "auto" and self.backend == "auto" and self.cpu_budget is None:
            return True
        mine = (self.workers, self.backend, self.cpu_budget)
        return mine == (first.workers, first.backend, first.cpu_budget)

    def pool_box(self, group: Sequence[MapSpec]) -> list[Any]:
        """The (shared) box holding the pool of `group`, which starts with this spec."""
        key = tuple(id(s) for s in group)
        box = self.pools.get(key)
        if box is None:
            box = self.pools[key] = []
            weakref.finalize(self, _shutdown_box, box)
        return box


def _shutdown_box(box: list[Any]) -> None:
    while box:
        try:
            box.pop().shutdown()
        except Exception:  # at interpreter exit: best effort, the OS reaps daemon workers
            pass


@dataclass(eq=False)
class FilterSpec(Spec):
    pred: Callable[[Any], bool]
    on_error: str
    kind = "filter"

    def describe(self) -> str:
        return f"filter({fn_name(self.pred)})"


@dataclass(eq=False)
class BatchSpec(Spec):
    size: int
    drop_last: bool
    collate: Callable[[list[Any]], Any] | None
    kind = "batch"

    def describe(self) -> str:
        return f"batch({self.size}{', drop_last' if self.drop_last else ''})"


@dataclass(eq=False)
class PrefetchSpec(Spec):
    depth: int | None
    cpu_budget: float | None
    kind = "prefetch"

    def describe(self) -> str:
        return "prefetch"


@dataclass(eq=False)
class CacheSpec(Spec):
    path: str | None
    kind = "cache"
    store: Any = None

    def describe(self) -> str:
        return f"cache({self.path or 'memory'})"


@dataclass(eq=False)
class RepeatSpec(Spec):
    n: int | None
    kind = "repeat"

    def describe(self) -> str:
        return f"repeat({'' if self.n is None else self.n})"


def group_maps(chain: list[Spec]) -> list[Spec | list[MapSpec]]:
    """Fuse consecutive map specs into groups (lists); other specs stay as they are."""
    out: list[Spec | list[MapSpec]] = []
    for spec in chain:
        prev = out[-1] if out else None
        if isinstance(spec, MapSpec) and isinstance(prev, list) and spec.fuses_into(prev[0]):
            prev.append(spec)
        elif isinstance(spec, MapSpec):
            out.append([spec])
        else:
            out.append(spec)
    return out


def group_is_random(group: list[MapSpec]) -> list[bool]:
    return [needs_rng(s.fn) for s in group]


def initial_workers(groups: list[list[MapSpec]], cpu: float) -> list[int]:
    """Pinned groups keep their count; tuned groups share the rest of the budget evenly."""
    cap = max(1, math.floor(cpu + 1e-9))
    pinned = sum(int(g[0].workers) for g in groups if isinstance(g[0].workers, int))
    tuned = [g for g in groups if not isinstance(g[0].workers, int)]
    share = max(1, (cap - pinned) // max(1, len(tuned)))
    out = []
    for g in groups:
        w = g[0].workers
        budget = g[0].cpu_budget
        n = int(w) if isinstance(w, int) else share
        if budget is not None and not isinstance(w, int):
            n = max(1, min(n, math.floor(budget + 1e-9)))
        out.append(n)
    return out
