"""Move numpy arrays between processes through shared memory instead of pickling them.

`pack(obj)` pickles `obj` with protocol 5, taking every contiguous array's bytes out of band and
writing them into one file in /dev/shm (one segment per message, 64-byte aligned).
`unpack(msg)` maps that file, unlinks it at once (the mapping stays valid; nothing is left in
/dev/shm however the process ends later) and rebuilds the arrays as zero-copy views of the mapping.
Segment names start with a per-pool prefix (`cpuwise-<pid>-<token>-`), so `sweep(prefix)` can
remove whatever a killed process left behind. Messages with little array data are pickled inline:
a segment costs more than copying a few KiB.
"""

from __future__ import annotations

import mmap
import os
import pickle
import time
from typing import Any

SHM_DIR = "/dev/shm"
PREFIX = "cpuwise-"
INLINE_BYTES = 16 * 1024  # below this much array data a message is pickled inline
MAX_PIPE_MESSAGE = 64 * 1024  # larger pickles go through shared memory: a pipe holds ~200 KiB
_ALIGN = 64
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
AVAILABLE = os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)

Message = tuple[bytes, str | None, list[tuple[int, int]]]


def pack(obj: Any, name: str) -> Message:
    """Serialise `obj`; array bytes go to /dev/shm/<name> when there are enough of them."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    total = sum(r.nbytes for r in raws)
    if (not buffers or total < INLINE_BYTES) and AVAILABLE:
        data = data if not buffers else pickle.dumps(obj, protocol=5)
        if len(data) <= MAX_PIPE_MESSAGE:
            return data, None, []
        # a big pickle (long strings, raw bytes) would fill the pipe: send it as one segment
        raws, data = [memoryview(data)], b""
    elif not AVAILABLE:
        return pickle.dumps(obj, protocol=5), None, []
    layout: list[tuple[int, int]] = []
    off = 0
    for r in raws:
        layout.append((off, r.nbytes))
        off += (r.nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
    size = max(off, 1)
    path = os.path.join(SHM_DIR, name)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _POPULATE)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    try:
        for (o, n), r in zip(layout, raws, strict=True):
            mm[o : o + n] = r
    finally:
        mm.close()
    return data, name, layout


def unpack(msg: Message) -> Any:
    """Rebuild the object; arrays are writable views of the (already unlinked) segment."""
    data, name, layout = msg
    if name is None:
        return pickle.loads(data)
    if not data:  # the whole pickle travelled in the segment
        with open(os.path.join(SHM_DIR, name), "rb") as f:
            raw = f.read(layout[0][1])
        os.unlink(os.path.join(SHM_DIR, name))
        return pickle.loads(raw)
    path = os.path.join(SHM_DIR, name)
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _POPULATE)
    finally:
        os.close(fd)
        os.unlink(path)
    view = memoryview(mm)
    return pickle.loads(data, buffers=[view[o : o + n] for o, n in layout])


def discard(msg: Message) -> None:
    """Drop a message without reading it (a cancelled task's result)."""
    name = msg[1]
    if name is not None:
        try:
            os.unlink(os.path.join(SHM_DIR, name))
        except FileNotFoundError:
            pass


def sweep(prefix: str) -> int:
    """Remove every segment whose name starts with `prefix`; returns how many."""
    if not AVAILABLE:
        return 0
    n = 0
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return 0
    for fname in names:
        if fname.startswith(prefix):
            try:
                os.unlink(os.path.join(SHM_DIR, fname))
                n += 1
            except OSError:
                pass
    return n


def sweep_stale(min_age_s: float = 60.0) -> int:
    """Remove segments left by cpuwise processes that died without cleaning up (both the parent
    and its workers SIGKILLed): the owner pid in the name is gone and the file is old."""
    if not AVAILABLE:
        return 0
    n = 0
    now = time.time()
    for fname in leftovers(PREFIX):
        try:
            pid = int(fname[len(PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if _alive(pid):
            continue
        path = os.path.join(SHM_DIR, fname)
        try:
            if now - os.stat(path).st_mtime >= min_age_s:
                os.unlink(path)
                n += 1
        except OSError:
            pass
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def leftovers(prefix: str = PREFIX) -> list[str]:
    """Segments in /dev/shm whose names start with `prefix` (tests use this)."""
    if not AVAILABLE:
        return []
    return sorted(f for f in os.listdir(SHM_DIR) if f.startswith(prefix))


class SlotWriter:
    """Worker side of the result arena: reusable /dev/shm files ("slots"), one result each.

    Fresh tmpfs pages cost a page fault and zeroing each (measured ~15x a plain copy on the 2-core
    CI machine), so a worker writes results into slots whose pages already exist, and reuses a
    slot once the parent reports that every array viewing it was released.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.slots: dict[int, tuple[int, mmap.mmap, int]] = {}  # id -> (fd, mapping, size)
        self.free: list[int] = []

    def release(self, ids: list[int]) -> None:
        self.free.extend(ids)

    def write(self, obj: Any) -> tuple[Any, ...]:
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        raws = [b.raw() for b in buffers]
        total = sum(r.nbytes for r in raws)
        if not buffers or total < INLINE_BYTES or not AVAILABLE:
            data = data if not buffers else pickle.dumps(obj, protocol=5)
            if len(data) <= MAX_PIPE_MESSAGE or not AVAILABLE:
                return ("inline", data)
            raws, data = [memoryview(data)], b""  # a big pickle: through a slot, not the pipe
        layout: list[tuple[int, int]] = []
        off = 0
        for r in raws:
            layout.append((off, r.nbytes))
            off += (r.nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
        slot, new_name = self._slot(off)
        _, mm, size = self.slots[slot]
        for (o, n), r in zip(layout, raws, strict=True):
            mm[o : o + n] = r
        return ("slot", data, slot, new_name, size, layout)

    def _slot(self, need: int) -> tuple[int, str | None]:
        fits = [k for k in self.free if self.slots[k][2] >= need]
        if fits:
            k = min(fits, key=lambda k: self.slots[k][2])
            self.free.remove(k)
            return k, None
        if self.free:  # reuse (and grow if needed) the first free slot
            k = self.free.pop(0)
            fd, mm, _ = self.slots[k]
            mm.close()
            size = _round_up(need)
            os.ftruncate(fd, size)
            self.slots[k] = (fd, mmap.mmap(fd, size, flags=mmap.MAP_SHARED), size)
            return k, None
        k = len(self.slots)
        name = f"{self.prefix}s{k}"
        size = _round_up(need)
        fd = os.open(os.path.join(SHM_DIR, name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.ftruncate(fd, size)
        self.slots[k] = (fd, mmap.mmap(fd, size, flags=mmap.MAP_SHARED), size)
        return k, name

    def close(self) -> None:
        for fd, mm, _ in self.slots.values():
            mm.close()
            os.close(fd)
        self.slots.clear()


def _round_up(n: int) -> int:
    """Slot sizes grow in steps of 1/8 of a power of two, so a slightly larger result reuses it."""
    n = max(n, 4096)
    step = 1 << max(12, n.bit_length() - 3)
    return (n + step - 1) // step * step


class _Slot:
    __slots__ = ("fd", "mm", "size", "busy", "views")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.mm: mmap.mmap | None = None
        self.size = 0
        self.busy = False
        self.views: list[memoryview] = []


class SlotReader:
    """Parent side: maps each worker slot once and hands out zero-copy arrays viewing it.

    Every array built on a slot keeps an export on the slot's mmap; the mmap refuses a resize
    while any export lives, so `collect_free` finds the slots no array uses any more with a
    no-op `resize(same size)` (microseconds) and gives them back to the worker.
    """

    def __init__(self) -> None:
        self.slots: dict[int, _Slot] = {}

    def read(self, msg: tuple[Any, ...]) -> Any:
        if msg[0] == "inline":
            return pickle.loads(msg[1])
        _, data, k, new_name, size, layout = msg
        if new_name is not None:
            path = os.path.join(SHM_DIR, new_name)
            fd = os.open(path, os.O_RDWR)
            os.unlink(path)  # from now on only the two descriptors keep it: nothing can leak
            self.slots[k] = _Slot(fd)
        slot = self.slots[k]
        if slot.size != size or slot.mm is None:
            slot.mm = mmap.mmap(slot.fd, size, flags=mmap.MAP_SHARED | _POPULATE)
            slot.size = size  # an old mapping lives on while arrays still view it
        if not data:  # the whole pickle is in the slot: read it, the slot is free again at once
            o, n = layout[0]
            obj = pickle.loads(slot.mm[o : o + n])
            slot.busy = True
            return obj
        base = memoryview(slot.mm)
        views = [base[o : o + n] for o, n in layout]
        try:
            return pickle.loads(data, buffers=views)
        finally:
            slot.busy = True
            slot.views = [v for v in views + [base] if not _release(v)]

    def collect_free(self, busy: set[int] | None = None) -> list[int]:
        """Slots whose arrays are all gone (they can be written again)."""
        freed = []
        for k, slot in self.slots.items():
            if not slot.busy or slot.mm is None:
                continue
            slot.views = [v for v in slot.views if not _release(v)]
            if slot.views:
                continue
            try:
                slot.mm.resize(slot.size)
            except BufferError:
                continue
            except (OSError, ValueError, SystemError):  # no mremap here: keep the mapping busy
                continue
            slot.busy = False
            freed.append(k)
        return freed

    def close(self) -> None:
        for slot in self.slots.values():
            slot.views = []
            slot.mm = None
            try:
                os.close(slot.fd)
            except OSError:
                pass
        self.slots.clear()


def _release(v: memoryview) -> bool:
    try:
        v.release()
        return True
    except BufferError:
        return False
