"""The contract every model-transforming pass follows.

A *torch pass* (pruning, low-rank, distillation) takes an `nn.Module` and returns a transformed
`nn.Module` plus notes; the search then exports it to ONNX (and may quantize it), benchmarks it on this
CPU and evaluates it against the reference, so a pass never has to measure anything itself.

    class MyPass(TorchPass):
        name = "lowrank"
        def applies(self, model, ctx): return any(isinstance(m, nn.Linear) for m in model.modules())
        def run(self, model, ctx): ...; return PassResult(new_model, params={"energy": 0.95}, notes=[...])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


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
    train_batches: Callable[[], Iterable[tuple[tuple[Any, ...], Any]]] | None = None
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


class TorchPass(ABC):
    """A pass that rewrites a torch model. Subclasses set `name` and implement applies/run."""

    name: str = ""

    @abstractmethod
    def applies(self, model: torch.nn.Module, ctx: PassContext) -> bool:
        """True if this pass can do something useful to `model`."""

    @abstractmethod
    def run(self, model: torch.nn.Module, ctx: PassContext) -> PassResult:
        """Return a transformed copy; never modify `model` in place."""
