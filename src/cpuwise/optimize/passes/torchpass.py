"""Torch passes: rewrite the torch model (pruning, low-rank, distillation), then let the search measure it.

A *torch pass* takes an `nn.Module` and returns a transformed `nn.Module` plus notes (`run`); the search
step around it (`TorchPass.propose`) exports the result to ONNX, redoes what the graph passes did on the
model as given (transformer fusion, the INT8 recipe that won), benchmarks it on this CPU and evaluates it
against the reference, so a torch pass never has to measure anything itself.

    class MyPass(TorchPass):
        name = "lowrank"
        def applies(self, model, ctx): return any(isinstance(m, nn.Linear) for m in model.modules())
        def run(self, model, ctx): ...; return PassResult(new_model, params={"energy": 0.95}, notes=[...])
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cpuwise._optional import require
from cpuwise.optimize.export import export_onnx
from cpuwise.optimize.io import lengths, plan_batches, take, trim
from cpuwise.optimize.passes.base import Basis, Outcome, Pass, Plan
from cpuwise.optimize.passes.fuse import attention_hint, fuse_or_keep
from cpuwise.optimize.passes.int8 import quantize_and_measure
from cpuwise.optimize.search.choose import Candidate, within
from cpuwise.optimize.search.judge import Judge, first_line

if TYPE_CHECKING:  # pragma: no cover
    import torch

Batches = Callable[[], Iterable[tuple[tuple[Any, ...], Any]]]
TRAIN_BATCH = 32  # rows per fine-tuning / distillation step


@dataclass
class PassContext:
    """What a pass may use besides the model.

    Attributes:
        example_inputs: a tuple of tensors the model is called with: `model(*example_inputs)`.
        train_batches: optional callable returning a fresh iterable of `(inputs_tuple, target)`
            batches for fine-tuning / distillation (target may be None: then use the teacher's output).
        task: "classifier" (logits out), "embedding" (vectors out) or "generic".
        output_fn: maps the model's raw output to the tensor that is compared (e.g. mean pooling).
        time_budget_s: rough wall-clock budget for any training the pass does.
        seed: for anything random.
        loss_fn: optional task loss(outputs, target) for fine-tuning; passes fall back to matching
            the teacher's outputs (MSE / KL) when it is None.
    """

    example_inputs: tuple[Any, ...]
    train_batches: Batches | None = None
    task: str = "generic"
    output_fn: Callable[[Any], Any] | None = None
    time_budget_s: float = 60.0
    seed: int = 0
    loss_fn: Callable[[Any, Any], Any] | None = None


@dataclass
class PassResult:
    """A transformed model and what was done to it."""

    model: torch.nn.Module
    params: dict[str, Any] = field(default_factory=dict)  # e.g. {"ratio": 0.3} — goes in the report
    notes: list[str] = field(default_factory=list)


class TorchPass(Pass):
    """A pass that rewrites a torch model. Subclasses set `name` and implement applies/run."""

    needs = frozenset({"torch"})
    graph = False  # runs once, on the winning runtime's branch, with its settings, fusion and INT8 recipe

    @abstractmethod
    def applies(self, model: torch.nn.Module, ctx: PassContext) -> bool:
        """True if this pass can do something useful to `model`."""

    @abstractmethod
    def run(self, model: torch.nn.Module, ctx: PassContext) -> PassResult:
        """Return a transformed copy; never modify `model` in place."""

    def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        """Run the pass on the model as given; export, measure and quantize what it returns."""
        name, module = self.name, basis.module
        ctx = context(plan, judge)
        try:
            if not self.applies(module, ctx):
                return Outcome(notes=[f"{name}: does not apply to this model"])
            res = self.run(module, ctx)
            if same_weights(module, res.model):
                shown = "; ".join(res.notes)[:120]
                return Outcome(notes=[f"{name}: left the model unchanged ({shown}); not measured again"])
            path = export_onnx(res.model, ctx.example_inputs, plan.model_path(name), input_names=plan.names)
        except Exception as exc:  # noqa: BLE001 - a failing pass is reported, the search goes on
            dropped = f"crashed: {type(exc).__name__}: {first_line(exc)}"[:300]
            return Outcome([Candidate(name, name, fp32=False, dropped=dropped)])
        shown_params = [
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in res.params.items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)
        ][:3]
        label = name + (f" ({', '.join(shown_params)})" if shown_params else "")
        rt = basis.rt
        if basis.fused and rt.name == "onnxruntime":  # fused with its own head count: pruning may drop heads
            path = fuse_or_keep(path, attention_hint(res.model))
        parts = {k: v for k, v in basis.parts.items() if k != "int8"} | {"model": label}
        # fp32=False: a changed model is not lossless, so it may never be the budget-impossible fallback
        c = judge.measure_file("", name, path, basis.settings, basis.io, runtime=rt, fp32=False,
                               params=res.params, notes=list(res.notes), parts=parts, parent=basis.best.name)
        out = Outcome([c])
        if basis.int8_recipe is not None and c.ok:
            # keeping layers in float only pays when the FP32 student itself is within budget
            fits = within(c, judge.reference_score, plan.budget)
            int8, _ = quantize_and_measure(basis, path, [basis.int8_recipe], plan, judge, parts=parts,
                                           parent=c.name, allow_sensitivity=fits)
            out.extend(int8)
        return out


def context(plan: Plan, judge: Judge) -> PassContext:
    """What a torch pass gets in the search: two eval rows to trace with, the training rows, the task."""
    torch = require("torch")
    example = take(judge.feed, slice(0, 2))
    if judge.spec is not None:
        example = trim(example, judge.spec)
    return PassContext(
        example_inputs=tuple(torch.from_numpy(np.ascontiguousarray(example[n])) for n in plan.names),
        train_batches=train_batches(plan, judge),
        task=plan.task,
        output_fn=plan.output_fn,
        time_budget_s=plan.time_budget_s / 3 if not plan.quick else 10.0,
    )


def train_batches(plan: Plan, judge: Judge) -> Batches:
    """Batches of the training rows (the eval rows when none were given), with None targets.

    Sequence inputs come in length-bucketed batches in a seeded shuffle, other inputs in order; passes
    train on the teacher's outputs, since the search has no labels for them.
    """
    torch = require("torch")
    feed = plan.train_feed if plan.train_feed is not None else judge.feed
    spec = judge.spec
    rows = len(next(iter(feed.values())))

    def batches() -> Iterable[tuple[tuple[Any, ...], Any]]:
        if spec is not None:
            order = plan_batches(lengths(feed, spec), TRAIN_BATCH)
            rng = np.random.default_rng(0)
            order = [order[i] for i in rng.permutation(len(order))]
        else:
            order = [np.arange(i, min(rows, i + TRAIN_BATCH)) for i in range(0, rows, TRAIN_BATCH)]
        for idx in order:
            part = take(feed, idx)
            if spec is not None:
                part = trim(part, spec)
            yield tuple(torch.from_numpy(np.ascontiguousarray(part[n])) for n in plan.names), None

    return batches


def same_weights(a: Any, b: Any) -> bool:
    """True when two torch modules have identical state dicts (a pass that changed nothing)."""
    torch = require("torch")
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa
    )
