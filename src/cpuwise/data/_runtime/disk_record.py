"""The on-disk record of `cache(path)`: JSON item descriptions plus raw bytes. Nothing is unpickled.

    path/data.bin     the bytes of every array and bytes leaf, raw, 64-byte aligned; served as
                      copy-on-write memory maps (zero-copy, writable, never written back)
    path/items.jsonl  one line per item: its tree as JSON, each array as (offset, nbytes, dtype, shape)
    path/done.json    written last, when a full pass finished: format version, item count, upstream
                      fingerprint, the size of both files and the sha256 of items.jsonl

An item is a tree of numpy arrays and scalars, Python numbers, strings, bytes and None, in tuples,
lists and dicts (keys: strings, numbers, None or tuples of them). Anything else is a ConfigError when
it is written, naming where it sits in the item. Reading trusts nothing: a done.json that is not
this format's, files of another size or a changed items.jsonl make the record incomplete (the next
pass rebuilds it), and a line that does not describe a valid tree inside data.bin (object dtypes,
offsets past the end, sizes that do not match) is a PipelineError naming the folder. A tampered
record can give wrong numbers, never run code or crash the process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise.errors import ConfigError, PipelineError

log = logging.getLogger("cpuwise.data")

FORMAT = "cpuwise.data cache"
VERSION = 2  # 1 pickled its metadata (meta.bin): never read again
ALIGN = 64
CAN_STORE = ("numpy arrays and scalars, Python numbers, strings, bytes and None, in tuples, lists and "
             "dicts (keys: strings, numbers, None or tuples of them)")
_TAGS = {"t", "l", "d", "a", "s", "b"}  # tuple, list, dict, array, numpy scalar, bytes


class Damaged(ValueError):
    """A record file that does not describe a valid record (how is in the message)."""


# --- writing --------------------------------------------------------------------------------------

def encode(tree: Any, put: Any, where: str = "item") -> Any:
    """The JSON form of `tree`; `put(buffer) -> offset` stores each array's or bytes' raw bytes."""
    if isinstance(tree, np.ndarray | np.generic):  # first: np.float64 is a float, np.str_ a str
        arr = np.asarray(tree)
        arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)
        if arr.dtype.hasobject:
            raise _unstorable(f"a numpy array of dtype {arr.dtype} (Python objects)", where)
        return {"s" if isinstance(tree, np.generic) else "a":
                [put(arr.reshape(-1).view(np.uint8)), arr.nbytes, np.lib.format.dtype_to_descr(arr.dtype),
                 list(arr.shape)]}
    if tree is None or isinstance(tree, bool):
        return tree
    if isinstance(tree, str):
        return str(tree)
    if isinstance(tree, int | float):
        return float(tree) if isinstance(tree, float) else int(tree)
    if isinstance(tree, bytes | bytearray):
        return {"b": [put(np.frombuffer(bytes(tree), np.uint8)), len(tree)]}
    if isinstance(tree, tuple | list):
        return {"t" if isinstance(tree, tuple) else "l":
                [encode(x, put, f"{where}[{i}]") for i, x in enumerate(tree)]}
    if isinstance(tree, dict):
        out = []
        for k, v in tree.items():
            key = encode(k, put, f"{where} key {k!r}")
            if not _is_key(key):
                raise _unstorable(f"a dict key of type {type(k).__name__}", where)
            out.append([key, encode(v, put, f"{where}[{k!r}]")])
        return {"d": out}
    raise _unstorable(f"a {type(tree).__module__}.{type(tree).__qualname__}", where)


def _is_key(node: Any) -> bool:
    if node is None or isinstance(node, bool | int | float | str):
        return True
    return isinstance(node, dict) and list(node) == ["t"] and all(_is_key(x) for x in node["t"])


def _unstorable(what: str, where: str) -> ConfigError:
    return ConfigError(f"cache(path): expected items made of {CAN_STORE}; found {what} at {where}. Fix: "
                       "convert it in a map() before .cache(path) (e.g. to a numpy array), or use "
                       ".cache() in memory, which keeps any object.")


# --- reading --------------------------------------------------------------------------------------

def decode(node: Any, data: memoryview) -> Any:
    """The tree `node` describes, arrays viewing `data`; Damaged if it is not a valid description."""
    if node is None or isinstance(node, bool | int | float | str):
        return node
    if not (isinstance(node, dict) and len(node) == 1 and next(iter(node)) in _TAGS):
        raise Damaged(f"expected a value or a one-key tagged object, found {_short(node)}")
    tag, body = next(iter(node.items()))
    if tag in ("t", "l"):
        items = [decode(x, data) for x in _list(body, tag)]
        return tuple(items) if tag == "t" else items
    if tag == "d":
        out = {}
        for pair in _list(body, tag):
            if not (isinstance(pair, list) and len(pair) == 2 and _is_key(pair[0])):
                raise Damaged(f"expected a [key, value] pair, found {_short(pair)}")
            out[decode(pair[0], data)] = decode(pair[1], data)
        return out
    if tag == "b":
        off, n = _span(_list(body, tag, 2), data)
        return bytes(data[off : off + n])
    off, n, descr, shape = _list(body, tag, 4)
    off, n = _span([off, n], data)
    dtype = _dtype(descr)
    if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                            for d in shape)) or (tag == "s" and shape):
        raise Damaged(f"expected a shape of sizes >= 0, found {_short(shape)}")
    if math.prod(shape) * dtype.itemsize != n:
        raise Damaged(f"expected {math.prod(shape) * dtype.itemsize} bytes for shape {shape} of {dtype}, "
                      f"found {n}")
    try:
        arr = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=off).reshape(shape)
    except ValueError as exc:  # e.g. a zero itemsize
        raise Damaged(f"expected an array of {dtype} {shape}, found {exc}") from None
    return arr[()] if tag == "s" else arr


def _list(body: Any, tag: str, n: int | None = None) -> list[Any]:
    if not isinstance(body, list) or (n is not None and len(body) != n):
        raise Damaged(f"expected a list{'' if n is None else f' of {n}'} under {tag!r}, found {_short(body)}")
    return body


def _span(pair: list[Any], data: memoryview) -> tuple[int, int]:
    off, n = pair
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (off, n))
    if not ok or off + n > len(data) or (n and off % ALIGN):
        raise Damaged(f"expected an aligned byte range inside data.bin ({len(data)} bytes), found "
                      f"{_short(pair)}")
    return off, n


def _dtype(descr: Any) -> np.dtype[Any]:
    try:
        dtype = np.lib.format.descr_to_dtype(descr)
    except Exception as exc:  # whatever a tampered descr makes numpy raise
        raise Damaged(f"expected a numpy dtype description, found {_short(descr)} ({exc})") from None
    if dtype.hasobject:  # raw bytes read as Python object pointers would crash the process
        raise Damaged(f"expected a dtype without Python objects, found {dtype}")
    return dtype


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


# --- the record -----------------------------------------------------------------------------------

class DiskStore:
    """The record of one pass on disk (see the module docstring); `cache(path)` fills and serves it."""

    DATA, ITEMS, DONE = "data.bin", "items.jsonl", "done.json"
    OLD = ("meta.bin",)  # files of format version 1, removed when a record is rebuilt

    def __init__(self, path: str | os.PathLike[str], fingerprint: str) -> None:
        self.dir = Path(path)
        self.fingerprint = fingerprint
        self._mm: mmap.mmap | None = None
        self._items_mm: mmap.mmap | None = None
        self._starts = np.zeros(1, np.int64)  # line starts in items.jsonl, plus its end
        self._data_f: Any = None
        self._items_f: Any = None
        self._count = 0
        self.complete = self._load()

    # --- opening ----------------------------------------------------------------------------------
    def _load(self) -> bool:
        """Open a finished record; False (rebuild) when there is none or it does not check out."""
        self.close()
        if not (self.dir / self.DONE).exists():
            return False
        try:
            return self._open()
        except (OSError, ValueError) as exc:  # Damaged, bad JSON, a file gone
            log.warning("cpuwise.data: the cache at '%s' is not usable (%s); rebuilding it", self.dir, exc)
            self.close()
            return False

    def _open(self) -> bool:
        info = json.loads((self.dir / self.DONE).read_text())
        want = {"format": str, "version": int, "count": int, "fingerprint": str, "data_bytes": int,
                "items_bytes": int, "items_sha256": str}
        if not isinstance(info, dict) or any(not isinstance(info.get(k), t) for k, t in want.items()):
            raise Damaged(f"expected {self.DONE} of format version {VERSION}, found {_short(info)}")
        if (info["format"], info["version"]) != (FORMAT, VERSION) or info["fingerprint"] != self.fingerprint:
            return False  # another format or another upstream: rebuild quietly
        data = self._map(self.DATA, info["data_bytes"])
        items = self._map(self.ITEMS, info["items_bytes"])
        raw = memoryview(items) if items is not None else memoryview(b"")
        if hashlib.sha256(raw).hexdigest() != info["items_sha256"]:
            raise Damaged(f"{self.ITEMS} changed since the record was written")
        ends = np.flatnonzero(np.frombuffer(raw, np.uint8) == ord("\n")) + 1
        if len(ends) != info["count"] or (len(raw) and ends[-1] != len(raw)):
            raise Damaged(f"expected {info['count']} items, found {len(ends)} lines")
        self._mm, self._items_mm = data, items
        self._starts = np.concatenate([[0], ends]).astype(np.int64)
        return True

    def _map(self, name: str, size: int) -> mmap.mmap | None:
        path = self.dir / name
        st = os.stat(path)
        if not (path.is_file() and st.st_size == size):
            raise Damaged(f"expected {name} of {size} bytes, found {st.st_size}")
        if size == 0:
            return None
        with open(path, "rb") as f:
            return mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)

    # --- recording ------------------------------------------------------------------------------
    def begin(self, keep: int) -> bool:
        """Start (keep=0) or continue a recording after its first `keep` items; False if impossible."""
        self.close()
        self.complete = False
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / self.DONE).unlink(missing_ok=True)
        for old in self.OLD:
            (self.dir / old).unlink(missing_ok=True)
        for name in (self.DATA, self.ITEMS):  # a FIFO or a folder put there would block or break appends
            path = self.dir / name
            if path.is_symlink() or (path.exists() and not path.is_file()):
                if path.is_dir() and not path.is_symlink():
                    raise PipelineError(f"cache '{self.dir}': expected {name} to be a file, found a folder. "
                                        "Fix: remove it (or the cache folder); the next pass rebuilds it.")
                path.unlink()
        items_end = data_end = 0
        if keep:
            try:
                items_end, data_end = self._prefix(keep)
            except (OSError, ValueError) as exc:
                log.warning("cpuwise.data: cannot continue the cache at '%s' (%s)", self.dir, exc)
                return False
        for name, size in ((self.ITEMS, items_end), (self.DATA, data_end)):
            with open(self.dir / name, "ab") as f:
                f.truncate(size)
        self._items_f = open(self.dir / self.ITEMS, "ab")
        self._data_f = open(self.dir / self.DATA, "ab")
        self._count = keep
        return True

    def _prefix(self, keep: int) -> tuple[int, int]:
        """Bytes of items.jsonl and data.bin that the first `keep` recorded items use (validated)."""
        text = (self.dir / self.ITEMS).read_bytes()
        ends = np.flatnonzero(np.frombuffer(text, np.uint8) == ord("\n")) + 1
        if len(ends) < keep:
            raise Damaged(f"expected {keep} recorded items, found {len(ends)}")
        items_end = int(ends[keep - 1])
        size = (self.dir / self.DATA).stat().st_size
        data = self._map(self.DATA, size) if size else None
        view = memoryview(data) if data is not None else memoryview(b"")
        end = 0
        for line in text[:items_end].splitlines():
            node = json.loads(line)
            decode(node, view)  # raises Damaged unless every range lies inside data.bin
            end = max(end, _data_end(node))
        return items_end, (end + ALIGN - 1) // ALIGN * ALIGN

    def append(self, item: Any) -> None:
        chunks: list[np.ndarray] = []
        pos = self._data_f.tell()

        def put(buf: np.ndarray) -> int:
            nonlocal pos
            off = pos
            chunks.append(buf)
            pos += (buf.nbytes + ALIGN - 1) // ALIGN * ALIGN
            return off

        node = encode(item, put)  # raises before anything is written
        for buf in chunks:
            self._data_f.write(buf.data)
            self._data_f.write(b"\0" * ((-buf.nbytes) % ALIGN))
        self._items_f.write(json.dumps(node, separators=(",", ":")).encode() + b"\n")
        self._count += 1

    def finish(self) -> None:
        sizes = {}
        for name, f in ((self.DATA, self._data_f), (self.ITEMS, self._items_f)):
            f.flush()
            os.fsync(f.fileno())
            sizes[name] = f.tell()
            f.close()
        self._data_f = self._items_f = None
        digest = hashlib.sha256((self.dir / self.ITEMS).read_bytes()).hexdigest()
        done = {"format": FORMAT, "version": VERSION, "count": self._count, "fingerprint": self.fingerprint,
                "data_bytes": sizes[self.DATA], "items_bytes": sizes[self.ITEMS], "items_sha256": digest}
        tmp = self.dir / (self.DONE + ".tmp")
        tmp.write_text(json.dumps(done))
        os.replace(tmp, self.dir / self.DONE)  # appears last: a crash leaves no finished-looking record
        self.complete = self._load()

    # --- serving --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._starts) - 1

    def get(self, i: int) -> Any:
        assert self._items_mm is not None or len(self) == 0
        a, b = int(self._starts[i]), int(self._starts[i + 1])
        data = memoryview(self._mm) if self._mm is not None else memoryview(b"")
        try:
            assert self._items_mm is not None
            return decode(json.loads(self._items_mm[a:b]), data)
        except (ValueError, RecursionError) as exc:  # Damaged, bad JSON, absurd nesting
            raise PipelineError(
                f"cache '{self.dir}': item {i} of the record is damaged ({exc}); expected the record this "
                "pipeline wrote. Fix: delete the folder; the next pass rebuilds it."
            ) from None

    def close(self) -> None:
        for f in (self._data_f, self._items_f):
            if f is not None:
                f.close()
        self._data_f = self._items_f = None


def _data_end(node: Any) -> int:
    """The end of the last data.bin byte range `node` uses (0 for none)."""
    if not isinstance(node, dict) or len(node) != 1:
        return 0
    tag, body = next(iter(node.items()))
    if tag in ("a", "s", "b") and isinstance(body, list) and len(body) >= 2:
        off, n = body[0], body[1]
        return off + n if isinstance(off, int) and isinstance(n, int) else 0
    if tag in ("t", "l") and isinstance(body, list):
        return max((_data_end(x) for x in body), default=0)
    if tag == "d" and isinstance(body, list):
        return max((_data_end(v) for p in body if isinstance(p, list) for v in p), default=0)
    return 0
