"""Hugging Face Trainer: a `TrainerCallback` that reports steps, data-wait and the dataloader arguments.

    from transformers import Trainer
    from cpuwise.integrations.hf import callback
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[callback()])

The data-wait of a step is the Trainer fetching its batch(es) (every micro-batch of a gradient
accumulation step is fetched before `on_step_begin`).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from cpuwise import _channel as channel
from cpuwise.integrations.clock import StepClock
from cpuwise.monitor.instrument import trial

_classes: dict[str, type] = {}
ARGS = ("dataloader_num_workers", "dataloader_prefetch_factor", "dataloader_persistent_workers",
        "dataloader_pin_memory", "per_device_train_batch_size", "gradient_accumulation_steps")


def callback_class(trainer_callback: type) -> type:
    """The cpuwise TrainerCallback class, built on transformers' `TrainerCallback`."""
    known = _classes.get("hf")
    if known is not None:
        return known

    class CpuwiseTrainerCallback(trainer_callback):  # type: ignore[misc, valid-type]
        """Reports each optimizer step to cpuwise (no-op outside `cpuwise doctor` / `cpuwise.watch`)."""

        def __init__(self) -> None:
            self.clock = StepClock("hf")

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if channel.ACTIVE:
                channel.emit("framework", {"name": "hf", **{a: getattr(args, a, None) for a in ARGS}})

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.clock.epoch_start()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.clock.batch_start()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.clock.batch_end()

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.clock.epoch_end()

    _classes["hf"] = CpuwiseTrainerCallback
    return CpuwiseTrainerCallback


def callback() -> Any:
    """A new cpuwise TrainerCallback."""
    # lazy: transformers is optional and heavy; it is already imported when a Trainer is being built
    from transformers import TrainerCallback

    return callback_class(TrainerCallback)()


def trial_safe(args: Any) -> None:
    """A --try-fixes trial leaves no checkpoints or logs that look like a real run: no saving, no
    reporting to any tracker, no pushing to the Hub (the TrainingArguments, changed in place)."""
    if args is None:
        return
    strategy = getattr(args, "save_strategy", None)
    try:
        args.save_strategy = type(strategy)("no") if strategy is not None and not isinstance(strategy, str) \
            else "no"
    except (TypeError, ValueError):
        args.save_strategy = "no"
    for name, value in (("report_to", []), ("push_to_hub", False), ("load_best_model_at_end", False)):
        if hasattr(args, name):
            setattr(args, name, value)


def attach(trainer_module: ModuleType) -> None:
    """Add a cpuwise callback to every `transformers.Trainer` (the doctor's auto-attach)."""
    trainer_cls = trainer_module.Trainer
    if getattr(trainer_cls.__init__, "_cpuwise", False):
        return
    orig = trainer_cls.__init__
    cls = callback_class(trainer_module.TrainerCallback)

    @functools.wraps(orig)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if trial.OV is not None:
            trial_safe(kwargs["args"] if "args" in kwargs else (args[1] if len(args) > 1 else None))
        orig(self, *args, **kwargs)
        if trial.OV is not None:
            trial_safe(getattr(self, "args", None))
        handler = getattr(self, "callback_handler", None)
        if not any(isinstance(c, cls) for c in getattr(handler, "callbacks", [])):
            self.add_callback(cls())

    __init__._cpuwise = True  # type: ignore[attr-defined]
    trainer_cls.__init__ = __init__
