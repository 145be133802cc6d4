"""Decide among measured candidates: the budget, the Pareto front and the choice (pure functions).

The reference is the model as given (FP32). A candidate's *drop* is `reference score - its score`
(scores are higher-is-better); a budget is absolute (`0.01`) or relative (`"1%"` of the reference).
The choice is the fastest candidate for the target whose drop is within budget; when none is, the
fastest lossless FP32 candidate (never a pruned / low-rank / distilled / INT8 one) is kept, or the most
accurate candidate when no lossless one ran, and the result says the budget was impossible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cpuwise.errors import ConfigError
from cpuwise.optimize.bench import BenchResult
from cpuwise.optimize.evaluate import Score
from cpuwise.optimize.io import IOConfig
from cpuwise.optimize.runtimes import Settings

TARGETS = ("latency", "throughput")
# The stages a candidate composes, in pipeline order; its name joins the techniques it uses at each.
STAGES = ("model", "fusion", "int8", "runtime", "settings", "io")


def compose(parts: dict[str, str]) -> str:
    """The name of a composition: its techniques in pipeline order, joined by " + " (pure).

    The runtime reads "<runtime> FP32" when nothing quantized the model: {"runtime": "OpenVINO",
    "io": "dynamic padding"} is "OpenVINO FP32 + dynamic padding".
    """
    named = dict(parts)
    if named.get("runtime") and not named.get("int8") and not named["runtime"].endswith("FP32"):
        named["runtime"] += " FP32"
    return " + ".join(named[s] for s in STAGES if named.get(s))


def techniques(parts: dict[str, str]) -> int:
    """How many techniques a composition uses beyond running the exported graph (pure)."""
    return sum(1 for s in STAGES if parts.get(s) and s != "runtime")


@dataclass(frozen=True)
class Budget:
    """How much the score may drop below the reference's: absolute, or relative to the reference."""

    max_drop: float
    relative: bool = False
    min_row: float | None = None  # embeddings: every row's cosine must reach this (worst case, not mean)

    @classmethod
    def parse(cls, value: float | str, min_row: float | None = None) -> Budget:
        """`0.01` -> absolute; `"1%"` -> relative 0.01; negative values are rejected."""
        text = str(value).strip()
        rel = text.endswith("%")
        try:
            number = float(text.rstrip("%"))
        except ValueError as exc:
            raise ConfigError(
                f"max_drop must be a number like 0.01 or a percentage like '1%', got {value!r}"
            ) from exc
        if number < 0 or math.isnan(number):
            raise ConfigError(f"max_drop must be >= 0, got {value!r}")
        return cls(number / 100 if rel else number, rel, min_row)

    def allowed(self, reference: float) -> float:
        """The largest drop allowed below a reference score."""
        return abs(reference) * self.max_drop if self.relative else self.max_drop

    def label(self) -> str:
        """The budget in words, for messages."""
        text = (
            f"{self.max_drop * 100:g}% of the reference" if self.relative else f"{self.max_drop:g} absolute"
        )
        return text + (f", every row >= {self.min_row:g}" if self.min_row is not None else "")


@dataclass
class Candidate:
    """One measured way to run the model."""

    name: str
    technique: str  # "reference", "onnx", "session", "io", "int8", "prune", "lowrank", "distill", ...
    fp32: bool = True  # lossless: the model as given in FP32 (False for INT8 and prune/lowrank/distill)
    deployable: bool = True  # False for the torch eager reference
    model_path: str | None = None
    settings: Settings | None = None  # the runtime's session settings it was measured with
    io: IOConfig = field(default_factory=IOConfig)
    bench: BenchResult | None = None
    score: Score | None = None
    size_bytes: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dropped: str = ""  # why the candidate was dropped ("" = kept)
    runtime: str = "onnxruntime"  # the runtime it runs on (a key of runtimes.RUNTIMES)
    parts: dict[str, str] = field(default_factory=dict)  # stage -> technique (see STAGES, `compose`)
    parent: str = ""  # the candidate it adds one technique to: it must measure faster than that one

    @property
    def ok(self) -> bool:
        """Ran, was timed and scored, and its outputs are valid."""
        return not self.dropped and self.bench is not None and self.score is not None and self.score.valid

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "technique": self.technique,
            "fp32": self.fp32,
            "deployable": self.deployable,
            "model_path": self.model_path,
            "settings": self.settings.to_dict() if self.settings else None,
            "io": self.io.to_dict(),
            "bench": self.bench.to_dict() if self.bench else None,
            "score": self.score.to_dict() if self.score else None,
            "size_bytes": self.size_bytes,
            "params": self.params,
            "notes": self.notes,
            "dropped": self.dropped,
            "runtime": self.runtime,
            "parts": self.parts,
            "techniques": techniques(self.parts),
            "parent": self.parent,
        }


def bench_speed(bench: BenchResult, target: str) -> float:
    """Higher is faster: 1/p50 latency at batch 1, or throughput at batch N."""
    return 1000.0 / bench.p50_ms if target == "latency" else bench.throughput


def speed(c: Candidate, target: str) -> float:
    """The candidate's `bench_speed` (it must have run)."""
    assert c.bench is not None
    return bench_speed(c.bench, target)


def drop(c: Candidate, reference: float) -> float:
    """How far the candidate's score is below the reference's (negative: above it)."""
    assert c.score is not None
    return reference - c.score.value


def within(c: Candidate, reference: float, budget: Budget) -> bool:
    """True when the candidate ran and its drop (and, with `min_row`, its worst row) fits the budget."""
    if not c.ok or drop(c, reference) > budget.allowed(reference):
        return False
    worst = c.score.extra.get("cosine_min") if c.score is not None else None
    return budget.min_row is None or worst is None or worst >= budget.min_row


def faster(a: Candidate, b: Candidate, target: str) -> Candidate:
    """The faster of two candidates for `target`, counting only those that ran; `b` on a tie."""
    if not a.ok:
        return b
    if not b.ok:
        return a
    return a if speed(a, target) > speed(b, target) else b


def pareto_front(cands: list[Candidate], target: str) -> list[Candidate]:
    """Valid candidates no other valid candidate beats on both speed and score, fastest first."""
    ok = [c for c in cands if c.ok]
    front = []
    for c in ok:
        assert c.score is not None
        dominated = any(
            o is not c
            and o.score is not None
            and speed(o, target) >= speed(c, target)
            and o.score.value >= c.score.value
            and (speed(o, target) > speed(c, target) or o.score.value > c.score.value)
            for o in ok
        )
        if not dominated:
            front.append(c)
    return sorted(front, key=lambda c: -speed(c, target))


@dataclass
class Choice:
    """The chosen candidate (None when none ran), whether it fits the budget, and why it was chosen."""

    chosen: Candidate | None
    within_budget: bool
    message: str


def choose(cands: list[Candidate], reference: float, budget: Budget, target: str) -> Choice:
    """The fastest deployable candidate within budget; else the fastest lossless FP32 one."""
    if target not in TARGETS:
        raise ConfigError(f"target must be one of {TARGETS}, got {target!r}")
    deployable = [c for c in cands if c.ok and c.deployable]
    fits = [c for c in deployable if within(c, reference, budget)]
    if fits:
        best = max(fits, key=lambda c: speed(c, target))
        return Choice(best, True, f"fastest for {target} within a drop of {budget.label()}: {best.name}")
    # Only lossless candidates (FP32 graphs of the model as given: the exported ONNX, session settings,
    # I/O tricks, fusion) may be the fallback; a pruned / low-rank / distilled / INT8 model never is,
    # since its accuracy drop can be arbitrarily large. Without any, keep the most accurate one.
    lossless = [c for c in deployable if c.fp32]
    if not deployable:
        return Choice(None, False, "no candidate ran successfully; see the dropped candidates")
    smallest = min(drop(c, reference) for c in deployable)
    head = (
        f"budget impossible: no candidate stays within a drop of {budget.label()} "
        f"(smallest drop measured: {smallest:.3g}); "
    )
    if lossless:
        best = max(lossless, key=lambda c: speed(c, target))
        return Choice(best, False, head + f"kept the fastest FP32 model, {best.name}")
    best = max(deployable, key=lambda c: (-drop(c, reference), speed(c, target)))
    return Choice(
        best, False, head + f"no lossless FP32 model ran; kept the most accurate candidate, {best.name}"
    )
