"""Attach the framework callbacks to every Trainer / `fit` a job under the doctor makes (run by the job's
bootstrap, `cpuwise/_boot/sitecustomize.py`). Each is attached right after its framework is imported,
never importing it early."""

from __future__ import annotations

from types import ModuleType

from cpuwise import _channel as channel
from cpuwise.monitor.instrument import hooks


def _lightning(module: ModuleType) -> None:
    # lazy: loaded only in a job that imports Lightning
    from cpuwise.integrations import lightning

    lightning.attach(module)


def _hf(module: ModuleType) -> None:
    # lazy: loaded only in a job that imports transformers' Trainer
    from cpuwise.integrations import hf

    hf.attach(module)


def _keras(module: ModuleType) -> None:
    # lazy: loaded only in a job that imports Keras
    from cpuwise.integrations import keras

    keras.attach(module)


def install() -> None:
    """Register the post-import attachments (does nothing outside the doctor)."""
    if not channel.ACTIVE:
        return
    hooks.after_import("pytorch_lightning", _lightning)
    hooks.after_import("lightning.pytorch", _lightning)
    hooks.after_import("transformers.trainer", _hf)
    hooks.after_import("keras", _keras)
