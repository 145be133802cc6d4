"""cache: record one full pass of the upstream pipeline, then serve later epochs from the record.

In memory (`cache()`, any objects), or on disk (`cache(path)`): arrays are appended raw to `data.bin`
and served as zero-copy, copy-on-write memory maps, so decoded/resized samples are read back at page
cache speed and later epochs (and later runs) skip decoding. Each item's structure is a JSON line;
nothing is pickled, so a disk cache holds trees of arrays, numbers, strings and bytes (the format and
its checks: cpuwise.data._runtime.disk_record). A record is used only once a full pass finished
(`done.json` holds the count, the upstream description and the files' sizes; a different description,
or files that do not match, rebuild it). Put shuffle / random augmentation AFTER the cache: everything
before it is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from cpuwise.data._runtime.disk_record import DiskStore
from cpuwise.data.stages._base import BuildContext, Spec, Stage, require_upstream, state_fields, state_int
from cpuwise.errors import StateError


@dataclass(frozen=True, eq=False)
class CacheSpec(Spec):
    """cache(path): the record lives with the runtime (ctx.shared()), never on the spec."""

    path: str | None  # None: in memory
    kind: ClassVar[str] = "cache"

    def describe(self) -> str:
        return f"cache({self.path or 'memory'})"

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        shared = ctx.shared()  # the record outlives iterators: later epochs and derived Datasets serve it
        if shared.store is None:
            upstream_fp = "|".join(s.describe() for s in ctx.upstream_specs())
            shared.store = MemoryStore() if self.path is None else DiskStore(self.path, upstream_fp)
        return CacheStage(require_upstream(upstream, self), shared.store, self.describe())


class MemoryStore:
    """The record of one pass, in memory."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.complete = False

    def begin(self, keep: int) -> bool:
        """Start (keep=0) or continue a recording after `keep` items; False if impossible."""
        if len(self.items) < keep:
            return False
        del self.items[keep:]
        self.complete = False
        return True

    def append(self, item: Any) -> None:
        self.items.append(item)

    def finish(self) -> None:
        self.complete = True

    def __len__(self) -> int:
        return len(self.items)

    def get(self, i: int) -> Any:
        return self.items[i]


class CacheStage(Stage):
    """Fills the store on the first full pass (mode "fill"), then serves it (mode "serve")."""

    MODE_KEY = "mode"
    POS_KEY = "pos"
    kind = "cache"

    def __init__(self, upstream: Stage, store: Any, name: str) -> None:
        super().__init__(name, upstream)
        self.store = store
        self._mode = "fill"
        self._pos = 0
        self._recording = False

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        assert self.upstream is not None
        mode = "serve" if self.store.complete else "fill"
        pos = 0
        if initial_state is not None:
            mode, pos = state_fields(initial_state, self.name, self.MODE_KEY)[self.MODE_KEY], \
                state_int(initial_state, self.POS_KEY, self.name)
            if mode not in ("fill", "serve"):
                raise StateError(f"stage '{self.name}': expected mode 'fill' or 'serve', found {mode!r}. "
                                 "Fix: load a state saved from this pipeline.")
            if mode == "serve" and not self.store.complete:
                mode = "fill"  # the record is gone: rebuild, skipping what was delivered
        self._mode, self._pos = mode, pos
        if mode == "serve":
            return
        up = None if initial_state is None else initial_state.get(self.UPSTREAM_KEY)
        if up is None and pos:
            self.upstream.reset(None)
            for _ in range(pos):
                self.upstream.__next__()
        else:
            self.upstream.reset(up)
        self._recording = self.store.begin(pos)

    def next(self) -> Any:
        assert self.upstream is not None
        if self._mode == "serve":
            if self._pos >= len(self.store):
                raise StopIteration
            self._pos += 1
            return self.store.get(self._pos - 1)
        try:
            item = self.upstream.__next__()
        except StopIteration:
            if self._recording:
                self.store.finish()
                self._recording = False
            raise
        if self._recording:
            self.store.append(item)
        self._pos += 1
        return item

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        state: dict[str, Any] = {self.MODE_KEY: self._mode, self.POS_KEY: self._pos}
        if self._mode == "fill":
            state[self.UPSTREAM_KEY] = self.upstream.get_state()
        return state
