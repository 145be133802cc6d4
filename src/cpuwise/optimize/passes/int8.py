"""The int8 pass: quantize the graph with every INT8 recipe that suits this CPU and check each against FP32.

The recipes come from the runtime (which ones are safe depends on the CPU: see runtimes/onnxruntime.py).
When every whole-model recipe breaks the budget but one nearly fits, one weight group at a time is kept
in float (the nodes that saturate stay FP32, the rest stays INT8). The fastest recipe within budget is
what the torch passes' models are quantized with afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise.optimize.io import Feed, IOConfig, SequenceSpec, take, trim
from cpuwise.optimize.passes.base import Basis, Outcome, Pass, Plan
from cpuwise.optimize.search.choose import Candidate, speed, within
from cpuwise.optimize.search.judge import Judge


class Int8Pass(Pass):
    """Every INT8 recipe of the runtime on the (fused) FP32 graph, each measured against the reference."""

    name = "int8"

    def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        recipes = judge.runtime.int8_recipes(vnni=plan.vnni, have_calibration=True)
        out, winner = quantize_and_measure(basis.graph, recipes, basis.settings, basis.io, plan, judge)
        recipe = winner or judge.runtime.default_int8_recipe(vnni=plan.vnni)
        out.basis = replace(basis, int8_recipe=recipe)
        return out


def quantize_and_measure(
    src: Path,
    recipes: Sequence[Any],
    settings: Any,
    io: IOConfig,
    plan: Plan,
    judge: Judge,
    *,
    prefix: str = "",
    allow_keep_fp32: bool = True,
) -> tuple[Outcome, Any]:
    """Quantize `src` with each recipe and measure; the outcome and the fastest recipe within budget.

    Args:
        prefix: put before each candidate's name ("prune + " for a pruned model's INT8 versions).
        allow_keep_fp32: try keeping one weight group in float when every recipe breaks the budget.
    """
    runtime = judge.runtime
    if plan.quick:
        recipes = [r for r in recipes if r.mode == "dynamic"]
    calib = calibration_feeds(judge.feed, judge.spec) if plan.calibrate else None
    cpu = "VNNI" if plan.vnni else "no VNNI"
    out = Outcome()
    tried: list[tuple[Candidate, Any]] = []

    def attempt(tag: str, r: Any) -> None:
        dst = src.with_name(f"{src.stem}.int8-{tag}.onnx")
        name = f"{prefix}{r.name}"
        try:
            note = runtime.quantize(src, dst, r, calib)
        except Exception as exc:  # noqa: BLE001 - a failing recipe becomes a dropped candidate
            dropped = f"quantization failed: {exc}"[:300]
            out.candidates.append(Candidate(name, "int8", fp32=False, dropped=dropped))
            return
        if note:
            out.notes.append(f"{name}: {note}; not measured twice")
            return
        extra = [r.note, f"checked vs FP32 here ({cpu})"]
        c = judge.measure_file(name, "int8", dst, settings, io, fp32=False, params=r.to_dict(),
                               notes=[n for n in extra if n])
        out.candidates.append(c)
        tried.append((c, r))

    for i, r in enumerate(recipes):
        attempt(str(i), r)
    wins = [(c, r) for c, r in tried if within(c, judge.reference_score, plan.budget)]
    allowed = plan.budget.allowed(judge.reference_score)
    # only recipes that nearly fit are worth repairing (a CNN's 50 % top-1 loss is not one layer's fault)
    dynamic = [
        (c, r)
        for c, r in tried
        if c.ok
        and c.score is not None
        and r.mode == "dynamic"
        and not r.keep_fp32
        and judge.reference_score - c.score.value <= 3 * allowed + 1e-12
    ]
    if not wins and dynamic and allow_keep_fp32:
        # Every whole-model recipe broke the budget: keep one weight group at a time in float, starting
        # from the most accurate recipe, so the nodes that saturate stay FP32 and the rest stays INT8.
        base = max(dynamic, key=lambda cr: cr[0].score.value if cr[0].score else 0.0)[1]
        groups = sorted(runtime.weight_groups(src).items(), key=lambda kv: -len(kv[1]))
        groups = groups[: 2 if plan.quick else 4]
        for j, (group, nodes) in enumerate(groups):
            attempt(f"x{j}", runtime.keep_fp32(base, group, len(nodes)))
        wins = [(c, r) for c, r in tried if within(c, judge.reference_score, plan.budget)]
    if not wins:
        return out, None
    return out, max(wins, key=lambda w: speed(w[0], plan.target))[1]


def calibration_feeds(feed: Feed, spec: SequenceSpec | None, n: int = 64, batch: int = 8) -> list[Feed]:
    """Up to `n` rows spread over `feed`, in batches of `batch` (trimmed to their real length)."""
    rows = len(next(iter(feed.values())))
    idx = np.unique(np.linspace(0, rows - 1, num=min(n, rows)).astype(int))
    sub = take(feed, idx)
    return [
        trim(take(sub, slice(i, i + batch)), spec) if spec else take(sub, slice(i, i + batch))
        for i in range(0, len(idx), batch)
    ]
