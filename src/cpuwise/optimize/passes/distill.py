"""Knowledge distillation: a smaller student derived from the teacher, trained on the teacher's outputs.

Students:
- transformer encoders (a `.encoder.layer` ModuleList of BERT-like layers, e.g. MiniLM-L6): keep every
  `layer_stride`-th layer, initialised from the teacher's layers (the DistilBERT recipe: 6 -> 3 layers);
- CNNs / MLPs: every channel group narrowed to `width` by Torch-Pruning magnitude pruning, used as the
  initialisation (the output layer keeps its size).

Training uses the inputs of ctx.train_batches and the teacher's soft targets: KL divergence at
`temperature` for ctx.task == "classifier", 1 - cosine + MSE for "embedding", MSE otherwise (plus
ctx.loss_fn on the labels when both are given), AdamW, within ctx.time_budget_s, seeded by ctx.seed.

    result = DistillPass(epochs=3).run(teacher, PassContext(example_inputs=..., train_batches=...,
                                                            task="embedding"))

In the search, distillation is honest about what it costs: with passes="auto" it runs only when
`train_inputs` were given (a student graded on the rows it was trained on would look better than it is)
and when the time left covers the training it needs, estimated from a short trial (`TRIAL_STEPS` steps
of the teacher, which is at least as slow as its student); otherwise the search lists it as skipped
with the reason and the estimate. Asked for by name, it runs (on the eval rows when there are no
train_inputs, with a note saying so).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from cpuwise._optional import require
from cpuwise.errors import ConfigError
from cpuwise.optimize.passes._prune_transformer import bert_layers
from cpuwise.optimize.passes._torchutil import (
    as_inputs,
    clone,
    count_macs,
    count_params,
    output_of,
    seeded,
    train_student,
)
from cpuwise.optimize.passes.base import Basis, Outcome, Plan
from cpuwise.optimize.passes.prune import PrunePass
from cpuwise.optimize.passes.torchpass import PassContext, PassResult, TorchPass, context
from cpuwise.optimize.search.judge import Judge

TRIAL_STEPS = 3  # training steps timed to estimate an epoch
MEASURE_SHARE = 0.25  # of the time left, kept for exporting, quantizing and measuring the student

if TYPE_CHECKING:  # pragma: no cover
    import torch


class DistillPass(TorchPass):
    """Derive a student from the teacher and distil into it on ctx.train_batches.

    Args:
        layer_stride: transformers keep layers 0, s, 2s, ... (2 halves the depth); must be >= 2.
        width: CNN/MLP students keep this fraction of channels, in (0, 1).
        epochs: passes over ctx.train_batches (capped by ctx.time_budget_s).
        lr: AdamW learning rate; None picks 1e-4 for transformers, 1e-3 otherwise.
        temperature: softmax temperature of the classifier KL loss.
        alpha: weight of ctx.loss_fn (when given with labels) against the distillation loss.
    """

    name = "distill"
    trains = True

    def __init__(self, layer_stride: int = 2, width: float = 0.5, epochs: int = 3, lr: float | None = None,
                 temperature: float = 2.0, alpha: float = 0.5) -> None:
        if layer_stride < 2:
            raise ConfigError(f"layer_stride must be >= 2 (keep every n-th layer), got {layer_stride!r}")
        if not 0.0 < width < 1.0:
            raise ConfigError(f"width must be in (0, 1) (fraction of channels kept), got {width!r}")
        if epochs < 1 or (lr is not None and lr <= 0) or temperature <= 0 or not 0.0 <= alpha <= 1.0:
            raise ConfigError(
                f"need epochs >= 1, lr > 0, temperature > 0 and alpha in [0, 1]; got epochs={epochs}, "
                f"lr={lr}, temperature={temperature}, alpha={alpha}"
            )
        self.layer_stride, self.width, self.epochs, self.lr = layer_stride, width, epochs, lr
        self.temperature, self.alpha = temperature, alpha

    def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        """In "auto": only with train_inputs and when the estimated training fits the time left."""
        if plan.auto:
            if plan.train_feed is None:
                return Outcome(notes=[
                    "distill: skipped: no train_inputs (a student trained on the evaluation rows is graded "
                    "on what it learnt); pass train_inputs=... to let auto distil"])
            ctx = context(plan, judge)
            if self.applies(basis.module, ctx):
                need, per_step, steps = self.estimate_s(basis.module, ctx)
                have = plan.time_left() * (1 - MEASURE_SHARE)
                if need > have:
                    return Outcome(notes=[
                        f"distill: skipped: {self.epochs} epochs of {steps} steps need about {need:.0f} s "
                        f"({per_step * 1000:.0f} ms/step over a {TRIAL_STEPS}-step trial), the time budget "
                        f"has {max(have, 0):.0f} s left for training; raise time_budget_s to distil"])
        return super().propose(basis, plan, judge)

    def estimate_s(self, model: torch.nn.Module, ctx: PassContext) -> tuple[float, float, int]:
        """(seconds for `epochs`, seconds per step, steps per epoch) from a few timed steps of the teacher."""
        torch = require("torch")
        assert ctx.train_batches is not None
        batches = list(ctx.train_batches())
        trial = clone(model)
        opt = torch.optim.AdamW([p for p in trial.parameters() if p.requires_grad], lr=1e-6)
        trial.train()
        times = []
        for inputs, _ in batches[: TRIAL_STEPS + 1]:
            t0 = time.perf_counter()
            out = output_of(trial, as_inputs(inputs), ctx)
            out.float().pow(2).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t0)
        per_step = float(min(times[1:] or times))  # the first step pays for allocations
        return per_step * len(batches) * self.epochs, per_step, len(batches)

    def applies(self, model: torch.nn.Module, ctx: PassContext) -> bool:
        torch = require("torch")
        if ctx.train_batches is None:
            return False  # nothing to distil on
        if _encoder_with_layers(model) is not None:
            return True
        return sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules()) >= 2

    def run(self, model: torch.nn.Module, ctx: PassContext) -> PassResult:
        if ctx.train_batches is None:
            raise ConfigError(
                "DistillPass needs training inputs, got ctx.train_batches=None; pass a callable that "
                "returns an iterable of (inputs_tuple, target_or_None) batches."
            )
        example = as_inputs(ctx.example_inputs)
        teacher = clone(model)
        params_before, macs_before = count_params(teacher), count_macs(teacher, example)
        encoder = _encoder_with_layers(model)
        with seeded(ctx.seed):
            if encoder is not None:
                student, kind = clone(model), "layers"
                kept = _drop_layers(student, self.layer_stride)
                note = f"student keeps teacher layers {kept} (every {self.layer_stride}th)"
                lr = self.lr or 1e-4
            else:
                student, kind = self._narrow(model, ctx), "width"
                note = f"student keeps {self.width:.0%} of the channels (magnitude-pruned init)"
                lr = self.lr or 1e-3
        train = train_student(student, teacher, ctx, epochs=self.epochs, lr=lr,
                              temperature=self.temperature, alpha=self.alpha)
        notes = [note]
        if train["stopped_by_budget"]:
            notes.append(f"training stopped by the {ctx.time_budget_s:g} s budget after {train['steps']} "
                         "steps (not reproducible step-for-step)")
        params = {
            "student": kind, "layer_stride": self.layer_stride if kind == "layers" else None,
            "width": self.width if kind == "width" else None, "epochs": self.epochs, "lr": lr,
            "temperature": self.temperature, "steps": train["steps"], "train_s": train["seconds"],
            "final_loss": train["final_loss"],
            "params_before": params_before, "params_after": count_params(student),
            "macs_before": macs_before, "macs_after": count_macs(student, example),
        }
        return PassResult(student.eval(), params=params, notes=notes)

    def _narrow(self, model: torch.nn.Module, ctx: PassContext) -> torch.nn.Module:
        init_ctx = dataclasses.replace(ctx, train_batches=None)
        return PrunePass(ratio=1.0 - self.width, finetune_epochs=0).run(model, init_ctx).model


def _encoder_with_layers(model: torch.nn.Module) -> Any:
    """The first submodule with a `.layer` ModuleList of BERT-like layers (HF BertEncoder), or None."""
    torch = require("torch")
    for m in model.modules():
        layers = getattr(m, "layer", None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) >= 2 and bert_layers(layers) \
                and len(bert_layers(layers)) == len(layers):
            return m
    return None


def _drop_layers(model: torch.nn.Module, stride: int) -> list[int]:
    """Keep layers 0, stride, 2*stride... of the encoder in `model` (in place); returns their indices."""
    torch = require("torch")
    enc = _encoder_with_layers(model)
    kept = list(range(0, len(enc.layer), stride))
    enc.layer = torch.nn.ModuleList([enc.layer[i] for i in kept])
    configs = (getattr(enc, "config", None), getattr(model, "config", None))
    for cfg in {id(c): c for c in configs if c is not None}.values():
        if hasattr(cfg, "num_hidden_layers"):
            cfg.num_hidden_layers = len(kept)
    for new_idx, layer in enumerate(enc.layer):
        for sub in layer.modules():
            if hasattr(sub, "layer_idx"):
                sub.layer_idx = new_idx  # KV-cache index; harmless for encoders, right for decoders
    return kept
