"""Keras 3 adapter: a batched cpuwise Dataset as a `keras.utils.PyDataset`.

    model.fit(ds.to_keras(), epochs=10)          # any Keras 3 backend (torch, jax, tensorflow)

The pipeline streams: the k-th `__getitem__` call of an epoch returns the pipeline's k-th batch,
whatever index Keras asks for. Keras' own `shuffle=True` only permutes batch indices, which is then
harmless — the pipeline already shuffles samples per epoch (set by `on_epoch_end`). Each batch is
served exactly once per epoch. Keep Keras' `workers=1`: the parallelism is the pipeline's.
Normalise inside the model (keras.layers.Rescaling / Normalization): it then runs on the device, and
uint8 images cross the host-device link at a quarter of float32's bytes.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from cpuwise import _channel
from cpuwise._optional import available, require
from cpuwise.data.adapters._report import emit_stats, reports_itself
from cpuwise.errors import ConfigError

_CLASS: Any = None


def _keras() -> Any:
    """Import keras; with no backend chosen and no tensorflow, pick an installed one (torch, jax)."""
    if "keras" not in sys.modules and "KERAS_BACKEND" not in os.environ and not available("tensorflow"):
        for backend in ("torch", "jax"):
            if available(backend):
                os.environ["KERAS_BACKEND"] = backend
                break
    return require("keras", purpose="the Keras adapter (Keras 3)")


def _batch(batch: Any) -> Any:
    """Keras wants (x,), (x, y), (x, y, sample_weight) or a dict."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if isinstance(batch, tuple) and not 1 <= len(batch) <= 3:
        raise ConfigError(
            f"Keras expects batches (x,), (x, y) or (x, y, sample_weight); the pipeline yields "
            f"{len(batch)} fields. Fix: map samples to ((inputs...), label) before batch(), e.g. "
            ".map(lambda s: ((s[0], s[1]), s[2]))."
        )
    return batch


def _make_class() -> Any:
    keras = _keras()

    class CpuwisePyDataset(keras.utils.PyDataset):  # type: ignore[misc, name-defined]
        """A keras.utils.PyDataset streaming the batches of a cpuwise Dataset."""

        def __init__(self, ds: Any, max_queue_size: int = 10) -> None:
            super().__init__(workers=1, use_multiprocessing=False, max_queue_size=max_queue_size)
            self.dataset = ds
            self.epoch = 0
            self._it: Any = None
            self._served = 0
            self._lock = threading.Lock()  # Keras threads (workers > 1) may call __getitem__ at once
            self._report = not reports_itself(ds)  # a cpuwise Dataset reports its own deliveries

        @property
        def num_batches(self) -> int | None:
            try:
                return len(self.dataset)
            except TypeError:
                return None  # Keras treats None as an endless dataset

        def __len__(self) -> int:
            n = self.num_batches
            if n is None:
                raise TypeError("the wrapped pipeline has no known length")
            return n

        def __getitem__(self, index: int) -> Any:
            n = self.num_batches
            if n is not None and not -n <= index < n:
                raise IndexError(f"batch index {index} out of range for {n} batches")
            with self._lock:
                t0 = time.perf_counter()
                if self._it is None or (n is not None and self._served >= n):
                    self._start(self.epoch if self._it is None else self.epoch + 1)
                try:
                    batch = next(self._it)
                except StopIteration:  # the pipeline ended early (filter, skipped samples): new epoch
                    self._start(self.epoch + 1)
                    batch = next(self._it)
                self._served += 1
                if self._report and _channel.ACTIVE:  # one getitem, not a loop: timed by hand
                    _channel.note_next(t0, time.perf_counter(), stream=id(self), item=batch)
                return _batch(batch)

        def _start(self, epoch: int) -> None:
            if self._it is not None:
                emit_stats(self.dataset)
            self.epoch = epoch
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            self._it = iter(self.dataset)
            self._served = 0

        def on_epoch_end(self) -> None:
            """Keras ends an epoch: the next batch starts the next epoch (a new shuffle order)."""
            with self._lock:
                if self._it is not None:
                    emit_stats(self.dataset)
                    self._it = None
                    self.epoch += 1

        def state_dict(self) -> dict[str, Any]:
            return {"epoch": self.epoch, "served": self._served, "pipeline": self.dataset.state_dict()}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            self.epoch, self._served = int(state["epoch"]), int(state["served"])
            self.dataset.set_epoch(self.epoch)
            self.dataset.load_state_dict(state["pipeline"])
            self._it = iter(self.dataset)

    return CpuwisePyDataset


def to_keras(ds: Any, max_queue_size: int = 10) -> Any:
    """Wrap a batched cpuwise Dataset (or any re-iterable of numpy batches) as a keras.utils.PyDataset."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _make_class()
    return _CLASS(ds, max_queue_size=max_queue_size)
