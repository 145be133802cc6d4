"""cache: record one full pass of the upstream pipeline, then serve later epochs from the record.

In memory (`cache()`), or on disk (`cache(path)`): arrays are appended raw to `data.bin` and
served as zero-copy, copy-on-write memory maps, so decoded/resized samples are read back at page
cache speed and later epochs (and later runs) skip decoding. A record is used only once a full pass
finished (`done.json` holds the count and the upstream description; a different description
rebuilds it). Put shuffle / random augmentation AFTER the cache: everything before it is frozen.
"""

from __future__ import annotations

import json
import mmap
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cpuwise.data.stages._base import BuildContext, Spec, Stage, require_upstream, state_fields, state_int
from cpuwise.errors import StateError

_ALIGN = 64


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


class DiskStore:
    """The record of one pass on disk: data.bin (raw array bytes) + meta.bin (length-prefixed
    pickles with buffer offsets)."""

    def __init__(self, path: str | os.PathLike[str], fingerprint: str) -> None:
        self.dir = Path(path)
        self.fingerprint = fingerprint
        self._meta: list[bytes] | None = None
        self._mm: mmap.mmap | None = None
        self._data_f: Any = None
        self._meta_f: Any = None
        self._offsets: list[int] = []
        self.complete = self._load()

    def _load(self) -> bool:
        done = self.dir / "done.json"
        if not done.exists():
            return False
        info = json.loads(done.read_text())
        if info.get("fingerprint") != self.fingerprint:
            return False
        self._meta = list(self._scan(info["count"]))
        size = (self.dir / "data.bin").stat().st_size
        if size:
            with open(self.dir / "data.bin", "rb") as f:
                self._mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
        return len(self._meta) == info["count"]

    def _scan(self, limit: int) -> Any:
        path = self.dir / "meta.bin"
        if not path.exists():
            return
        with open(path, "rb") as f:
            for _ in range(limit):
                head = f.read(8)
                if len(head) < 8:
                    return
                (n,) = struct.unpack("<Q", head)
                body = f.read(n)
                if len(body) < n:
                    return
                yield body

    def begin(self, keep: int) -> bool:
        self.close()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "done.json").unlink(missing_ok=True)
        metas = list(self._scan(keep)) if keep else []
        if len(metas) < keep:
            return False
        meta_bytes = sum(8 + len(m) for m in metas)
        data_end = 0
        for m in metas:
            _, layout = pickle.loads(m)
            for off, n in layout:
                data_end = max(data_end, off + n)
        data_end = (data_end + _ALIGN - 1) // _ALIGN * _ALIGN
        for name, size in (("meta.bin", meta_bytes), ("data.bin", data_end)):
            with open(self.dir / name, "ab") as f:
                f.truncate(size)
        self._meta_f = open(self.dir / "meta.bin", "ab")
        self._data_f = open(self.dir / "data.bin", "ab")
        self._count = keep
        self.complete = False
        return True

    def append(self, item: Any) -> None:
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(item, protocol=5, buffer_callback=buffers.append)
        layout = []
        for b in buffers:
            raw = b.raw()
            off = self._data_f.tell()
            self._data_f.write(raw)
            pad = (-raw.nbytes) % _ALIGN
            self._data_f.write(b"\0" * pad)
            layout.append((off, raw.nbytes))
        meta = pickle.dumps((data, layout), protocol=5)
        self._meta_f.write(struct.pack("<Q", len(meta)) + meta)
        self._count += 1

    def finish(self) -> None:
        for f in (self._data_f, self._meta_f):
            f.flush()
            os.fsync(f.fileno())
            f.close()
        self._data_f = self._meta_f = None
        done = {"count": self._count, "fingerprint": self.fingerprint}
        (self.dir / "done.json").write_text(json.dumps(done))
        self.complete = self._load()

    def __len__(self) -> int:
        return len(self._meta or [])

    def get(self, i: int) -> Any:
        assert self._meta is not None
        data, layout = pickle.loads(self._meta[i])
        view = memoryview(self._mm) if self._mm is not None else memoryview(b"")
        return pickle.loads(data, buffers=[view[o : o + n] for o, n in layout])

    def close(self) -> None:
        for f in (self._data_f, self._meta_f):
            if f is not None:
                f.close()
        self._data_f = self._meta_f = None


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
