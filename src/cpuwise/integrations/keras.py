"""Keras 3 (any backend): a callback that reports steps, data-wait and what feeds `fit`.

    from cpuwise.integrations.keras import callback
    model.fit(train, epochs=10, callbacks=[callback(train)])

`fit`'s data decides the fix's idiom: a `keras.utils.PyDataset` (its `workers` and
`use_multiprocessing`), a `tf.data.Dataset` (`num_parallel_calls`, `prefetch`), a torch DataLoader, or
arrays in memory.
"""

from __future__ import annotations

import functools
import inspect
from types import ModuleType
from typing import Any

from cpuwise import _channel as channel
from cpuwise.integrations.clock import StepClock
from cpuwise.monitor.instrument import trial

_classes: dict[str, type] = {}


def describe_data(x: Any) -> dict[str, Any]:
    """What feeds `fit`: its kind and the settings a fix would change."""
    if x is None:
        return {"data": "none"}
    mod = type(x).__module__
    if hasattr(x, "__getitem__") and all(hasattr(x, a) for a in ("workers", "use_multiprocessing",
                                                                  "max_queue_size")):
        return {"data": "PyDataset", "class": type(x).__name__, "workers": x.workers,
                "use_multiprocessing": bool(x.use_multiprocessing), "max_queue_size": x.max_queue_size}
    if mod.startswith("tensorflow"):
        return {"data": "tf.data", "class": type(x).__name__}
    if mod.startswith("torch.utils.data"):
        return {"data": "torch DataLoader", "num_workers": getattr(x, "num_workers", None)}
    if inspect.isgenerator(x):
        return {"data": "generator"}
    return {"data": "arrays", "class": type(x).__name__}


def callback_class(keras: ModuleType) -> type:
    """The cpuwise callback class for this Keras."""
    known = _classes.get("keras")
    if known is not None:
        return known

    class CpuwiseKerasCallback(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        """Reports each training batch to cpuwise (no-op outside `cpuwise doctor` / `cpuwise.watch`)."""

        def __init__(self, data: Any = None) -> None:
            super().__init__()
            self.clock = StepClock("keras")
            self.data = describe_data(data) if data is not None else {}

        def on_train_begin(self, logs: Any = None) -> None:
            if channel.ACTIVE:
                backend = getattr(getattr(keras, "backend", None), "backend", lambda: "?")()
                channel.emit("framework", {"name": "keras", "version": getattr(keras, "__version__", "?"),
                                           "backend": backend, **self.data})

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.clock.epoch_start()

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self.clock.batch_start()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.clock.batch_end()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.clock.epoch_end()

    _classes["keras"] = CpuwiseKerasCallback
    return CpuwiseKerasCallback


def callback(data: Any = None) -> Any:
    """A new cpuwise callback; pass `fit`'s data so fixes are written for it."""
    # lazy: Keras is optional and heavy; it is already imported when a model is being fitted
    import keras

    return callback_class(keras)(data)


def attach(keras: ModuleType) -> None:
    """Add a cpuwise callback to every `Model.fit` call (the doctor's auto-attach)."""
    model_cls = keras.Model
    orig = model_cls.fit
    if getattr(orig, "_cpuwise", False):
        return
    cls = callback_class(keras)
    sig = inspect.signature(orig)

    @functools.wraps(orig)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            bound = sig.bind(self, *args, **kwargs)
        except TypeError:  # let Keras report the bad call itself
            return orig(self, *args, **kwargs)
        given = bound.arguments.get("callbacks")
        if given is None or isinstance(given, list | tuple):
            cbs = list(given or [])
            if not any(isinstance(c, cls) for c in cbs):
                cbs.append(cls(bound.arguments.get("x")))
            bound.arguments["callbacks"] = cbs
        return orig(*bound.args, **bound.kwargs)

    fit._cpuwise = True  # type: ignore[attr-defined]
    model_cls.fit = fit
    pydataset = getattr(getattr(keras, "utils", None), "PyDataset", None)
    if pydataset is not None:
        trial.patch_pydataset(pydataset)  # a --try-fixes trial's workers (nothing outside one)
