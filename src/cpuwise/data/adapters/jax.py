"""JAX / plain numpy adapters.

    for x, y in ds.to_numpy(): ...                  # the pipeline's numpy batches, reported to the doctor
    for x, y in ds.to_jax(): loss = step(x, y)      # jax arrays on the default device, one batch ahead

`to_jax` calls jax.device_put on batch i+1 before handing out batch i; device_put is asynchronous,
so the copy overlaps the step. `device` may be a jax Device, a platform name ("cpu", "gpu", "tpu"),
or a jax Sharding (to split a batch across devices).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from cpuwise._optional import require
from cpuwise.data.adapters._base import Wrapped
from cpuwise.data.adapters._report import reported

__all__ = ["JaxBatches", "NumpyBatches", "to_jax", "to_numpy"]


class NumpyBatches(Wrapped):
    """The dataset's batches as they are (numpy), with len/state passthrough and doctor reporting."""

    def __iter__(self) -> Iterator[Any]:
        return reported(self.dataset, self.dataset)


class JaxBatches(Wrapped):
    """Batches placed on a jax device (or sharding), one batch ahead."""

    def __init__(self, ds: Any, device: Any) -> None:
        super().__init__(ds)
        self.device = device

    def __iter__(self) -> Iterator[Any]:
        jax = require("jax", purpose="the JAX adapter")
        target = _resolve(jax, self.device)

        def place(batch: Any) -> Any:
            return jax.tree_util.tree_map(
                lambda a: jax.device_put(a, target) if isinstance(a, np.ndarray | np.generic) else a, batch)

        yield from reported(self.dataset, self._ahead(place))


def _resolve(jax: Any, device: Any) -> Any:
    if device is None:
        return jax.devices()[0]
    if isinstance(device, str):
        return jax.devices(device)[0]
    return device


def to_numpy(ds: Any) -> NumpyBatches:
    """Iterate `ds`'s numpy batches (reported to `cpuwise doctor` when it runs the job)."""
    return NumpyBatches(ds)


def to_jax(ds: Any, device: Any = None) -> JaxBatches:
    """Batches of `ds` as jax arrays on `device` (default jax.devices()[0]), placed one batch ahead."""
    require("jax", purpose="the JAX adapter")
    return JaxBatches(ds, device)
