"""PyTorch Lightning: a `Callback` that reports steps, data-wait and where the train DataLoader comes from.

    import pytorch_lightning as pl
    from cpuwise.integrations.lightning import callback
    trainer = pl.Trainer(callbacks=[callback()])

Works with `pytorch_lightning` and `lightning.pytorch` (each has its own Callback base class).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from cpuwise import _channel as channel
from cpuwise.integrations.clock import StepClock
from cpuwise.monitor.instrument import trial

_classes: dict[str, type] = {}


def _loader_facts(trainer: Any, pl_module: Any, pl: ModuleType) -> dict[str, Any]:
    """Where the train DataLoader is defined (a DataModule, the LightningModule, or fit's argument) and
    its settings: what a fix must change."""
    dm = getattr(trainer, "datamodule", None)
    base_dm = getattr(pl, "LightningDataModule", None)
    base_module = getattr(pl, "LightningModule", None)
    if dm is not None and base_dm is not None and type(dm).train_dataloader is not base_dm.train_dataloader:
        where, owner = "datamodule", type(dm).__name__
    elif base_module is not None and type(pl_module).train_dataloader is not base_module.train_dataloader:
        where, owner = "module", type(pl_module).__name__
    else:
        where, owner = "fit", None
    loader = getattr(trainer, "train_dataloader", None)
    loader = getattr(loader, "flattened", [loader])[0] if loader is not None else None
    workers = getattr(loader, "num_workers", None)
    return {"loader_from": where, "owner": owner, "num_workers": workers,
            "persistent_workers": getattr(loader, "persistent_workers", None),
            "batch_size": getattr(loader, "batch_size", None)}


def callback_class(pl: ModuleType) -> type:
    """The cpuwise Callback class for the Lightning package `pl` (pytorch_lightning or lightning.pytorch)."""
    known = _classes.get(pl.__name__)
    if known is not None:
        return known

    class CpuwiseCallback(pl.Callback):  # type: ignore[misc, name-defined]
        """Reports each training step to cpuwise (no-op outside `cpuwise doctor` / `cpuwise.watch`)."""

        def __init__(self) -> None:
            super().__init__()
            self.clock = StepClock("lightning")

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            if not channel.ACTIVE:
                return
            try:
                facts = _loader_facts(trainer, pl_module, pl)
            except Exception:  # a Lightning version we don't know: the steps still count
                facts = {}
            strategy = type(getattr(trainer, "strategy", None)).__name__
            channel.emit("framework", {"name": "lightning", "package": pl.__name__, "strategy": strategy,
                                       "version": getattr(pl, "__version__", "?"), **facts})

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.clock.epoch_start()

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            self.clock.batch_start()

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                               batch_idx: int) -> None:
            self.clock.batch_end()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.clock.epoch_end()

    _classes[pl.__name__] = CpuwiseCallback
    return CpuwiseCallback


def callback(package: str = "pytorch_lightning") -> Any:
    """A new cpuwise Callback for `package` ("pytorch_lightning" or "lightning.pytorch", imported)."""
    # lazy: Lightning is optional and heavy; it is already imported when a Trainer is being built
    import importlib

    return callback_class(importlib.import_module(package))()


def trial_safe(pl: ModuleType, kwargs: dict[str, Any]) -> None:
    """A --try-fixes trial leaves no checkpoints or logs that look like a real run: checkpointing and
    loggers off (a ModelCheckpoint the job passes is dropped; Lightning refuses it without
    checkpointing)."""
    kwargs["enable_checkpointing"] = False
    kwargs["logger"] = False
    checkpoint = getattr(getattr(pl, "callbacks", None), "ModelCheckpoint", None)
    if checkpoint is not None:
        kwargs["callbacks"] = [c for c in kwargs.get("callbacks") or [] if not isinstance(c, checkpoint)]


def attach(pl: ModuleType) -> None:
    """Add a cpuwise Callback to every Trainer that `pl` builds (the doctor's auto-attach)."""
    trainer_cls = pl.Trainer
    if getattr(trainer_cls.__init__, "_cpuwise", False):
        return
    orig = trainer_cls.__init__
    cls = callback_class(pl)

    @functools.wraps(orig)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        given = kwargs.get("callbacks")
        cbs = [given] if given is not None and not isinstance(given, list | tuple) else list(given or [])
        if not any(isinstance(c, cls) for c in cbs):
            cbs.append(cls())
        kwargs["callbacks"] = cbs
        if trial.OV is not None:
            trial_safe(pl, kwargs)
        orig(self, *args, **kwargs)

    __init__._cpuwise = True  # type: ignore[attr-defined]
    trainer_cls.__init__ = __init__
