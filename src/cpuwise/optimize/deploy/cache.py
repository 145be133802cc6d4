"""A prediction cache keyed by a hash of the input content, LRU-evicted to stay under a byte budget.

Repeated inputs (the same sentence, the same image) skip the model entirely. The key hashes every
input's name, dtype, shape and bytes, so equal content hits whatever object it arrives in.

    cache = PredictionCache(max_bytes=64 << 20)
    y = cache.get(feed)            # None on a miss
    cache.put(feed, y)
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np


def content_key(feed: dict[str, np.ndarray]) -> str:
    """A hash of the feed's content (names, dtypes, shapes, bytes); independent of dict order."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(feed):
        a = np.ascontiguousarray(feed[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class PredictionCache:
    """LRU cache of numpy outputs bounded by `max_bytes` (sum of cached arrays' nbytes)."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, feed: dict[str, np.ndarray] | str) -> np.ndarray | None:
        """The cached output for a feed (or its `content_key`), None on a miss."""
        key = feed if isinstance(feed, str) else content_key(feed)
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, feed: dict[str, np.ndarray] | str, value: np.ndarray) -> None:
        """Cache a copy of `value`, evicting the least recently used outputs beyond `max_bytes`."""
        key = feed if isinstance(feed, str) else content_key(feed)
        value = np.array(value, copy=True)  # callers may reuse their buffer
        size = int(value.nbytes)
        with self._lock:
            if size > self.max_bytes:
                return  # would evict everything and still not fit
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= int(old.nbytes)
            self._items[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= int(evicted.nbytes)

    def stats(self) -> dict[str, Any]:
        return {
            "items": len(self),
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
        }
