"""to_numpy / to_jax: batches pass through unchanged, placed on a device one batch ahead."""

from __future__ import annotations

import numpy as np
import pytest

from cpuwise._optional import available
from cpuwise.data.adapters.jax import to_numpy


def _data() -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
    return [(np.full((2, 3), i, np.float32), np.array([i, i], np.int64), [f"f{i}a", f"f{i}b"])
            for i in range(4)]


def test_to_numpy_passes_batches_and_len_through() -> None:
    data = _data()
    it = to_numpy(data)
    assert len(it) == 4
    out = list(it)
    assert all(a is b for x, y in zip(out, data, strict=True) for a, b in zip(x, y, strict=True))


def test_to_jax_without_jax_names_the_install() -> None:
    if available("jax"):
        pytest.skip("jax is installed")
    from cpuwise.data.adapters.jax import to_jax
    from cpuwise.errors import MissingExtraError

    with pytest.raises(MissingExtraError, match="pip install jax"):
        to_jax(_data())


def test_to_jax_places_arrays_and_keeps_other_leaves() -> None:
    jax = pytest.importorskip("jax")
    from cpuwise.data.adapters.jax import to_jax

    out = list(to_jax(_data(), device="cpu"))
    assert len(out) == 4
    for i, (x, y, names) in enumerate(out):
        assert isinstance(x, jax.Array) and x.shape == (2, 3) and float(x[0, 0]) == i
        assert isinstance(y, jax.Array) and names == [f"f{i}a", f"f{i}b"]
