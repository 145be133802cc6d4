"""The prediction cache: content keys and the LRU byte bound."""

from __future__ import annotations

import numpy as np
import pytest

from cpuwise.optimize.deploy.cache import PredictionCache, content_key


def feed(i: int) -> dict[str, np.ndarray]:
    return {"x": np.full((1, 4), i, dtype=np.float32)}


def test_key_depends_on_content_not_identity_or_order() -> None:
    a = {"a": np.arange(3), "b": np.ones(2)}
    b = {"b": np.ones(2).copy(), "a": np.arange(3).copy()}
    assert content_key(a) == content_key(b)
    assert content_key(a) != content_key({"a": np.arange(3), "b": np.zeros(2)})
    assert content_key({"a": np.arange(3, dtype=np.int64)}) != content_key(
        {"a": np.arange(3, dtype=np.int32)}
    )


def test_lru_stays_under_the_byte_bound_and_evicts_least_recent() -> None:
    value = np.zeros(100, dtype=np.float32)  # 400 bytes
    cache = PredictionCache(max_bytes=1000)
    cache.put(feed(0), value)
    cache.put(feed(1), value)
    assert cache.get(feed(0)) is not None  # 0 is now most recent
    cache.put(feed(2), value)
    assert cache.nbytes <= 1000 and len(cache) == 2
    assert cache.get(feed(1)) is None and cache.get(feed(0)) is not None and cache.get(feed(2)) is not None


def test_values_are_copied_and_oversize_values_skipped() -> None:
    cache = PredictionCache(max_bytes=64)
    v = np.ones(4, dtype=np.float32)
    cache.put(feed(0), v)
    v[:] = 7
    assert (cache.get(feed(0)) == 1).all()
    cache.put(feed(1), np.zeros(100, dtype=np.float32))
    assert cache.get(feed(1)) is None and cache.nbytes == 16


def test_replacing_a_key_keeps_the_byte_count_right() -> None:
    cache = PredictionCache(max_bytes=10_000)
    cache.put(feed(0), np.zeros(10, dtype=np.float32))
    cache.put(feed(0), np.zeros(20, dtype=np.float32))
    assert cache.nbytes == 80 and len(cache) == 1
    with pytest.raises(ValueError):
        PredictionCache(max_bytes=-1)
