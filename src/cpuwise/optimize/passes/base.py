"""The contract every optimize pass follows, and the records a pass reads and returns.

A pass is one way to make the model faster: tune the runtime's session (session), pad inputs to their
real length (io), fuse transformer subgraphs (fuse), quantize to INT8 (int8), or rewrite the torch model
(prune, lowrank, distill). The search runs the selected passes in the registry's order; each gets the
`Basis` (the best way to run the model found so far), the `Plan` (what the caller asked for, the same
for every pass) and the `Judge` (measures and scores a model file the same way for everyone), and
returns an `Outcome`: measured candidates, notes, and optionally a new basis for the passes after it.

A pass declares what it needs (`needs`: a torch module, an ONNX graph, a sequence input); the search
skips it with a note when the model lacks one, so `propose` never has to check.

    class Fp16Pass(Pass):
        name = "fp16"

        def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
            dst = plan.model_path("fp16")
            convert_to_fp16(basis.graph, dst)  # never write to basis.graph: later passes read it
            c = judge.measure_file("ONNX FP16", self.name, dst, basis.settings, basis.io, fp32=False)
            return Outcome([c])
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from cpuwise.optimize import runtimes
from cpuwise.optimize.io import Feed, IOConfig, SequenceSpec
from cpuwise.optimize.runtimes import Runtime
from cpuwise.optimize.search.choose import Budget, Candidate, faster, speed, within
from cpuwise.optimize.search.judge import Judge

# What a pass may need, and how a skip note names it.
NEEDS = {
    "torch": "a torch module (the model was given as a file)",
    "onnx": "an ONNX graph",
    "sequence": "a sequence input (2-D integer inputs with a 0/1 attention mask)",
}


@dataclass
class Plan:
    """What the caller asked for and what this host offers: the same for every pass of one search."""

    work: Path  # folder for the candidates' model files
    names: list[str]  # the model's input names, in call order
    task: str
    budget: Budget
    target: str = "latency"
    batch_size: int = 32
    quick: bool = False
    cores: int = 1
    vnni: bool = False
    output_fn: Callable[[Any], Any] | None = None
    train_feed: Feed | None = None  # rows for fine-tuning / distillation (None: the eval rows)
    time_budget_s: float = 120.0
    calibrate: bool = True  # the eval rows may calibrate static INT8 (False: synthetic rows)
    measure_reference: bool = True  # also time the torch model as given (the speed-up baseline)
    auto: bool = False  # the passes came from passes="auto" (distillation then runs only when it fits)
    deadline: float = float("inf")  # time.perf_counter() by which the search should be done
    _taken: set[str] = field(default_factory=set, init=False, repr=False)

    def time_left(self) -> float:
        """Seconds left of the search's time budget."""
        return self.deadline - time.perf_counter()

    def model_path(self, stem: str) -> Path:
        """A model file in the work folder that no other candidate of this search uses.

        `stem.onnx` the first time, `stem-2.onnx` the second: two instances of one pass (say two prune
        ratios) keep their own files, so each candidate is saved as the model it was measured as.
        """
        name, n = stem, 1
        while name in self._taken:
            n += 1
            name = f"{stem}-{n}"
        self._taken.add(name)
        return self.work / f"{name}.onnx"


@dataclass(frozen=True)
class Basis:
    """What the next pass builds on: the best way to run the model found so far.

    `best` is the fastest lossless (FP32, deployable) candidate measured so far; its runtime settings and
    I/O config are what later candidates are measured with. `graph` is the FP32 graph the graph passes
    transform (the fused one once fusion applied). Torch passes rewrite `module` (the model as given)
    and redo what the graph passes did: fusion when `fused`, INT8 with `int8_recipe` when int8 ran.
    """

    graph: Path
    best: Candidate
    settings: Any  # the runtime's settings of `best`
    io: IOConfig
    module: Any = None  # torch.nn.Module, None when the model was given as a file
    sequence: SequenceSpec | None = None
    fused: bool = False
    int8_recipe: Any = None  # the runtime's recipe; None when the int8 pass did not run
    runtime: str = runtimes.DEFAULT  # the branch of the search this basis belongs to
    parts: dict[str, str] = field(default_factory=dict)  # the composition of `best` (see choose.STAGES)
    alt_settings: tuple[Any, ...] = ()  # other measured settings within budget (bf16, the runner-up)

    @property
    def rt(self) -> Runtime:
        """The runtime of this branch."""
        return runtimes.get(self.runtime)

    def has(self, need: str) -> bool:
        """True when the model offers `need` (a key of NEEDS)."""
        return {
            "torch": self.module is not None,
            "onnx": self.graph.is_file(),
            "sequence": self.sequence is not None,
        }[need]

    def with_best(self, cands: Iterable[Candidate], target: str, reference: float = 1.0,
                  budget: Budget | None = None) -> Basis:
        """This basis with `best` moved to the fastest lossless candidate among `cands` and itself, and
        `alt_settings` to the settings of the other session candidates within `budget` (fastest first):
        one measurement may rank two settings wrongly on a busy machine, so the int8 pass tries its
        winner with these too and the runoff decides."""
        best = self.best
        tuned = []
        for c in cands:
            if c.runtime != self.runtime or not c.deployable:
                continue
            if c.fp32:
                best = faster(c, best, target)
            if budget is not None and c.technique == "session" and within(c, reference, budget):
                tuned.append(c)
        out = self
        if tuned:
            tuned.sort(key=lambda c: -speed(c, target))
            out = replace(out, alt_settings=tuple(c.settings for c in tuned))
        if best is self.best:
            return out
        parts = {k: v for k, v in best.parts.items() if k in ("fusion", "settings", "io", "runtime")}
        settings = best.settings or self.settings
        alts = tuple(s for s in out.alt_settings if s != settings)
        return replace(out, best=best, settings=settings, io=best.io, parts=parts or self.parts,
                       alt_settings=alts)


@dataclass
class Outcome:
    """What a pass did: measured candidates (dropped ones too), notes, and the basis for later passes."""

    candidates: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    basis: Basis | None = None  # None: unchanged

    def extend(self, other: Outcome) -> None:
        """Add another outcome's candidates and notes (its basis is not taken)."""
        self.candidates += other.candidates
        self.notes += other.notes


class Pass(ABC):
    """One optimization. Subclasses set `name` (and `needs`) and implement `propose`.

    Contract (checked on every registered pass by `cpuwise.testing.passes.check_pass`): `propose`
    returns candidates or, when it has nothing to measure, a note saying why; it never changes the
    basis's model or graph in place (it writes new files through `plan.model_path` or next to the
    graph); its candidates carry its name as `technique` (derived INT8 candidates: "int8").
    """

    name: str = ""
    needs: ClassVar[frozenset[str]] = frozenset({"onnx"})
    trains: ClassVar[bool] = False  # fine-tunes or distils on the training rows (a note says which rows)
    runtimes: ClassVar[frozenset[str] | None] = None  # the runtimes it applies to (None: every one)
    graph: ClassVar[bool] = True  # runs in every runtime's branch (False: once, on the winning branch)
    always: ClassVar[bool] = False  # runs even when the time budget is spent (in its shortest form)

    def step(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        """Run the pass as the search does: skipped with a note when the model lacks what it needs."""
        lacking = [NEEDS[n] for n in sorted(self.needs) if not basis.has(n)]
        if lacking:
            return Outcome(notes=[f"{self.name}: skipped, it needs {' and '.join(lacking)}"])
        if self.runtimes is not None and basis.runtime not in self.runtimes:
            return Outcome(notes=[f"{self.name}: not for {basis.rt.title} (it applies to "
                                  f"{', '.join(sorted(self.runtimes))})"])
        return self.propose(basis, plan, judge)

    @abstractmethod
    def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        """Build new ways to run the model on `basis`, measure them with `judge`, say what was done."""
