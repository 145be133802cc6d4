"""Helpers shared by the torch passes (prune, lowrank, distill): counting, outputs, the training loop."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from cpuwise._optional import require
from cpuwise.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from cpuwise.optimize.passes.torchpass import PassContext


def clone(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy in eval mode; the caller's model (and its train/eval mode) is left alone."""
    return copy.deepcopy(model).eval()


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (elements) of `model`."""
    return int(sum(p.numel() for p in model.parameters()))


def count_macs(model: torch.nn.Module, example_inputs: tuple[Any, ...]) -> int | None:
    """Multiply-accumulates of the Conv/Linear layers in one forward on `example_inputs` (None if it fails).

    Counted with forward hooks by `isinstance`, so Conv2d/Linear subclasses count too; matmuls outside
    modules (attention scores) are not included.
    """
    torch = require("torch")
    total = 0

    def hook(mod: Any, _inputs: Any, out: Any) -> None:
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            kh, kw = mod.kernel_size
            total += out.numel() * (mod.in_channels // mod.groups) * kh * kw
        else:
            total += out.numel() * mod.in_features

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        run_hooked(model, [as_inputs(example_inputs)], hooks)
    except Exception:  # noqa: BLE001 - MACs are informative only
        return None
    return total


def run_hooked(model: torch.nn.Module, batches: Iterable[tuple[Any, ...]], hooks: list[Any]) -> None:
    """Call `model(*inputs)` for each batch without gradients, then remove the `hooks` (also on error)."""
    torch = require("torch")
    try:
        with torch.no_grad():
            for inputs in batches:
                model(*inputs)
    finally:
        for h in hooks:
            h.remove()


def as_inputs(inputs: Any) -> tuple[Any, ...]:
    """Normalise a batch's inputs to a tuple of tensors (numpy arrays are converted)."""
    torch = require("torch")
    if not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    return tuple(torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x for x in inputs)


def output_of(model: torch.nn.Module, inputs: tuple[Any, ...], ctx: PassContext) -> torch.Tensor:
    """The tensor that is compared for `model(*inputs)` (see `pick_output`)."""
    return pick_output(model(*inputs), ctx)


def pick_output(out: Any, ctx: PassContext) -> torch.Tensor:
    """ctx.output_fn(raw) when given, else the first tensor of a tuple / `logits` / `last_hidden_state`."""
    if ctx.output_fn is not None:
        return ctx.output_fn(out)
    if isinstance(out, (tuple, list)):
        return out[0]
    for key in ("logits", "last_hidden_state"):
        if hasattr(out, key):
            return getattr(out, key)
    return out


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator for the block and restore the caller's RNG state afterwards."""
    torch = require("torch")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def match_loss(student: torch.Tensor, teacher: torch.Tensor, task: str, temperature: float) -> torch.Tensor:
    """Distillation loss: KL at a temperature (classifier), 1 - cosine + MSE (embedding), MSE otherwise."""
    torch = require("torch")
    F = torch.nn.functional
    s, t = student.float(), teacher.float()
    if task == "classifier":
        T = temperature
        return F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True,
                        reduction="batchmean") * (T * T)
    if task == "embedding":
        return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean() + F.mse_loss(s, t)
    return F.mse_loss(s, t)


def train_student(student: torch.nn.Module, teacher: torch.nn.Module, ctx: PassContext, *, epochs: int,
                  lr: float, temperature: float = 2.0, alpha: float = 0.5) -> dict[str, Any]:
    """Train `student` on ctx.train_batches against `teacher`'s outputs (and ctx.loss_fn when given).

    Loss = alpha * task_loss + (1 - alpha) * match_loss when ctx.loss_fn and a target are present,
    else match_loss alone. Stops after `epochs` or at ctx.time_budget_s, whichever comes first; the
    run is deterministic for ctx.seed unless the time budget cuts it short (reported in the result).
    """
    torch = require("torch")
    if ctx.train_batches is None:
        return {"steps": 0, "seconds": 0.0, "stopped_by_budget": False}
    if epochs < 0 or lr <= 0:
        raise ConfigError(f"epochs must be >= 0 and lr > 0, got epochs={epochs}, lr={lr}")
    teacher.eval()
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    start, steps, last_loss, stopped = time.perf_counter(), 0, float("nan"), False
    with seeded(ctx.seed):
        student.train()
        for _ in range(epochs):
            for inputs, target in ctx.train_batches():
                if time.perf_counter() - start > ctx.time_budget_s:
                    stopped = True
                    break
                xs = as_inputs(inputs)
                with torch.no_grad():
                    t_out = output_of(teacher, xs, ctx)
                raw = student(*xs)
                loss = match_loss(pick_output(raw, ctx), t_out, ctx.task, temperature)
                if ctx.loss_fn is not None and target is not None:
                    task_loss = ctx.loss_fn(raw, torch.as_tensor(target))
                    loss = alpha * task_loss + (1 - alpha) * loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
                last_loss = float(loss.detach())
            if stopped:
                break
    student.eval()
    return {"steps": steps, "seconds": round(time.perf_counter() - start, 3), "final_loss": last_loss,
            "stopped_by_budget": stopped}
