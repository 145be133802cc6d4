"""Structured pruning: remove whole channels / FFN neurons / attention heads, then a short fine-tune.

CNNs and MLPs go through Torch-Pruning (dependency groups keep residual adds, depthwise convs and BN
consistent; the output layer is never pruned). BERT-like encoders (HF `BertLayer`: `attention.self`
q/k/v, `attention.output.dense`, `intermediate.dense`, `output.dense`) are pruned by hand: the lowest
scoring FFN intermediate neurons and attention heads of every layer (see `_prune_transformer`); slicing
the Linear layers directly does not depend on how the installed transformers version computes attention.
Fewer MACs is not the same as faster on a CPU (Torch-Pruning #149), so the search measures the pruned
candidate on this CPU and chooses it only if it is the fastest within the accuracy budget.

    result = PrunePass(ratio=0.3).run(model, PassContext(example_inputs=(x,), train_batches=batches))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cpuwise._optional import require
from cpuwise.errors import ConfigError, OptimizeError
from cpuwise.optimize.passes._prune_transformer import activation_stats, bert_layers, prune_bert_layers
from cpuwise.optimize.passes._torchutil import (
    as_inputs,
    clone,
    count_macs,
    count_params,
    pick_output,
    run_hooked,
    seeded,
    train_student,
)
from cpuwise.optimize.passes.torchpass import PassContext, PassResult, TorchPass

if TYPE_CHECKING:  # pragma: no cover
    import torch

IMPORTANCES = ("magnitude", "taylor")


class PrunePass(TorchPass):
    """Structured channel / neuron / head pruning with an optional fine-tune on ctx.train_batches.

    Args:
        ratio: fraction of channels (per layer) to remove, in (0, 1).
        importance: for CNNs/MLPs, "magnitude" (L2 norm of each group's weights) or "taylor"
            (|w * dL/dw|, needs ctx.train_batches; classifiers without labels use the model's own
            predictions as targets). BERT-like layers always use mean |activation| x output-weight norm
            on ctx.example_inputs and the first training batches.
        finetune_epochs: passes over ctx.train_batches after pruning (0: none).
        lr: AdamW learning rate of the fine-tune.
        round_to: keep channel counts multiples of this (8 suits AVX2 kernels); None: no rounding.
        prune_heads: for BERT-like encoders, also remove attention heads (FFN neurons always).
    """

    name = "prune"
    trains = True

    def __init__(self, ratio: float = 0.3, importance: str = "magnitude", finetune_epochs: int = 2,
                 lr: float = 1e-3, round_to: int | None = 8, prune_heads: bool = True) -> None:
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f"ratio must be in (0, 1) (the fraction of channels removed), got {ratio!r}")
        if importance not in IMPORTANCES:
            raise ConfigError(f"importance must be one of {IMPORTANCES}, got {importance!r}")
        if finetune_epochs < 0 or lr <= 0:
            raise ConfigError(f"finetune_epochs must be >= 0 and lr > 0, got {finetune_epochs}, {lr}")
        if round_to is not None and round_to < 1:
            raise ConfigError(f"round_to must be None or >= 1, got {round_to}")
        self.ratio, self.importance, self.finetune_epochs, self.lr = ratio, importance, finetune_epochs, lr
        self.round_to, self.prune_heads = round_to, prune_heads

    def applies(self, model: torch.nn.Module, ctx: PassContext) -> bool:
        torch = require("torch")
        if bert_layers(model):
            return True
        layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        return len(layers) >= 2  # the output layer is never pruned, so one layer leaves nothing to do

    def run(self, model: torch.nn.Module, ctx: PassContext) -> PassResult:
        teacher, student = clone(model), clone(model)
        example = as_inputs(ctx.example_inputs)
        params_before, macs_before = count_params(student), count_macs(student, example)
        notes: list[str] = []
        layers = bert_layers(student)
        if layers:
            stats = activation_stats(student, layers, _sample_batches(ctx, example))
            notes += prune_bert_layers(layers, self.ratio, self.prune_heads, stats)
            notes.append("transformer neurons/heads scored by mean |activation| x output-weight norm")
        else:
            notes += self._prune_with_torch_pruning(student, ctx, example)
        train = train_student(student, teacher, ctx, epochs=self.finetune_epochs, lr=self.lr)
        if ctx.train_batches is None:
            notes.append("no train_batches: pruned without fine-tuning (accuracy may drop)")
        elif train["stopped_by_budget"]:
            notes.append(f"fine-tune stopped by the time budget after {train['steps']} steps")
        student.eval()
        params = {
            "ratio": self.ratio, "importance": self.importance, "round_to": self.round_to,
            "params_before": params_before, "params_after": count_params(student),
            "macs_before": macs_before, "macs_after": count_macs(student, example),
            "finetune_steps": train["steps"], "finetune_s": train["seconds"],
        }
        return PassResult(student, params=params, notes=notes)

    def _prune_with_torch_pruning(self, model: torch.nn.Module, ctx: PassContext,
                                  example: tuple[Any, ...]) -> list[str]:
        tp = require("torch_pruning", extra="optimize", purpose="structured pruning")
        notes: list[str] = []
        output_layer = _last_layer_run(model, example)
        use_taylor = self.importance == "taylor" and ctx.train_batches is not None
        if self.importance == "taylor" and not use_taylor:
            notes.append("taylor importance needs train_batches; used magnitude")
        imp = (tp.importance.GroupTaylorImportance() if use_taylor
               else tp.importance.GroupMagnitudeImportance(p=2))
        try:
            pruner = tp.pruner.MetaPruner(
                model, example, importance=imp, pruning_ratio=self.ratio,
                ignored_layers=[output_layer] if output_layer is not None else [], round_to=self.round_to,
            )
            if use_taylor:
                _accumulate_gradients(model, ctx)
            pruner.step()
        except Exception as exc:
            raise OptimizeError(
                f"Torch-Pruning could not prune {type(model).__name__} ({type(exc).__name__}: {exc}); "
                "expected a model of Conv/Linear/norm layers it can trace. Skip the prune pass for this "
                "model, or prune the traceable backbone separately."
            ) from exc
        model.zero_grad(set_to_none=True)
        return notes


def _sample_batches(ctx: PassContext, example: tuple[Any, ...],
                    max_batches: int = 4) -> list[tuple[Any, ...]]:
    """The example inputs plus the inputs of the first few training batches (for activation statistics)."""
    out = [example]
    if ctx.train_batches is not None:
        for i, (inputs, _target) in enumerate(ctx.train_batches()):
            if i >= max_batches:
                break
            out.append(as_inputs(inputs))
    return out


def _last_layer_run(model: torch.nn.Module, example: tuple[Any, ...]) -> torch.nn.Module | None:
    """The last Conv/Linear executed in a forward pass: the output layer, which must keep its width."""
    th = require("torch")
    order: list[torch.nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
             for m in model.modules() if isinstance(m, (th.nn.Conv2d, th.nn.Linear))]
    run_hooked(model, [example], hooks)
    return order[-1] if order else None


def _accumulate_gradients(model: torch.nn.Module, ctx: PassContext, max_batches: int = 8) -> None:
    """Backward a task loss over a few batches so Taylor importance has gradients to read."""
    torch = require("torch")
    F = torch.nn.functional
    assert ctx.train_batches is not None
    model.zero_grad(set_to_none=True)
    with seeded(ctx.seed):
        for i, (inputs, target) in enumerate(ctx.train_batches()):
            if i >= max_batches:
                break
            raw = model(*as_inputs(inputs))
            out = pick_output(raw, ctx)
            if ctx.loss_fn is not None and target is not None:
                loss = ctx.loss_fn(raw, torch.as_tensor(target))
            elif ctx.task == "classifier":
                loss = F.cross_entropy(out, out.detach().argmax(-1))  # the model's own labels
            else:
                loss = out.float().pow(2).mean()  # output energy: a label-free sensitivity proxy
            loss.backward()
