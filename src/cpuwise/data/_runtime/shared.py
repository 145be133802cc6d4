"""The live objects that the iterators of one spec share: warm worker pools and a cache's record.

Specs are immutable descriptions and hold none of these; the runtime keeps them here, keyed by the
spec. Every Dataset derived from the same chain holds the same spec objects, so all of them (and
each of their iterators) reuse the same warm workers and the same cache record. When the last
Dataset holding a spec is garbage-collected, that spec's pools shut down; `ds.close()` and the
interpreter's exit shut them down earlier.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cpuwise.data._engine.pool import Pool


@dataclass(eq=False)
class Shared:
    """What the runtime keeps for one spec."""

    pools: dict[tuple[int, ...], Pool] = field(default_factory=dict)  # by the ids of a fused map group
    store: Any = None  # a cache()'s record: MemoryStore or DiskStore

    def pool(self, key: tuple[int, ...], start: Callable[[], Pool]) -> Pool:
        """The pool of map group `key`, started by `start()` the first time (or after a shutdown)."""
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = start()
        return pool

    def shutdown_pools(self) -> None:
        while self.pools:
            _, pool = self.pools.popitem()
            try:
                pool.shutdown()
            except Exception:  # at interpreter exit: best effort, the OS reaps daemon workers
                pass


_SHARED: dict[int, Shared] = {}  # id(spec) -> its Shared; the entry goes when the spec does


def shared_by(spec: object) -> Shared:
    """The Shared of `spec`, created (and tied to the spec's lifetime) on first use."""
    key = id(spec)
    held = _SHARED.get(key)
    if held is None:
        held = _SHARED[key] = Shared()
        weakref.finalize(spec, _release, key)  # runs before the id can be reused
    return held


def _release(key: int) -> None:
    held = _SHARED.pop(key, None)
    if held is not None:
        held.shutdown_pools()


def pools_of(chain: Iterable[object]) -> Iterator[Pool]:
    """The live pools of the specs in `chain` (none are started)."""
    for spec in chain:
        held = _SHARED.get(id(spec))
        if held is not None:
            yield from list(held.pools.values())


def shutdown_pools(chain: Iterable[object]) -> None:
    """Shut down every pool of the specs in `chain`; the next iterator starts new ones."""
    for spec in chain:
        held = _SHARED.get(id(spec))
        if held is not None:
            held.shutdown_pools()
