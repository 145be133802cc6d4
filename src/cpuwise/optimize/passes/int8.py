"""The int8 pass: quantize the graph with every INT8 recipe the runtime offers here, check each against FP32,
and when none fits the budget, keep the layers that cost most in FP32 until one does.

The recipes come from the runtime (ORT's quantizer with the recipes that suit this CPU, NNCF for
OpenVINO). When every whole-model recipe breaks the budget but one nearly fits, the per-layer
sensitivity search runs (the way NNCF's accuracy-aware mode does): each weight group (one role of every
layer: a transformer's Q/K/V, FFN up, FFN down; a CNN's convolutions of one shape) is kept in FP32 alone
and scored, the groups are ranked by how much score that buys back, and the worst are kept in FP32,
one more at a time, until the budget holds. OpenVINO also runs NNCF's own accuracy-aware quantization,
which does the same per layer. The fastest recipe within budget is what the torch passes' models are
quantized with afterwards; on OpenVINO it is measured once more with the lossy settings that fit the
budget (bf16 for the ops left in float).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise.optimize.evaluate import score_outputs
from cpuwise.optimize.io import Feed, SequenceSpec, run_all, take, trim
from cpuwise.optimize.passes.base import Basis, Outcome, Pass, Plan
from cpuwise.optimize.runtimes import Runner
from cpuwise.optimize.search.choose import Candidate, speed, within
from cpuwise.optimize.search.judge import Judge

NEAR = 3.0  # only recipes within 3x the allowed drop are repaired (a CNN's 50 % top-1 loss is not one layer)
GROUPS = 6  # weight groups ranked by the sensitivity search (3 with quick)
ALTERNATIVES = 2  # other settings the winning recipe is measured with
CALIBRATION_ROWS = 300  # static INT8 calibration rows (NNCF's and sentence-transformers' default: 300)


class Int8Pass(Pass):
    """Every INT8 recipe of the runtime on the (fused) FP32 graph, each measured against the reference."""

    name = "int8"
    always = True  # the step that matters most: past the time budget it still tries the first recipe

    def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        recipes = list(basis.rt.int8_recipes(vnni=plan.vnni, have_calibration=True))
        out, winner = quantize_and_measure(basis, basis.graph, recipes, plan, judge)
        recipe = winner or basis.rt.default_int8_recipe(vnni=plan.vnni)
        out.basis = replace(basis, int8_recipe=recipe)
        return out


def slack(c: Candidate | Any, reference: float, plan: Plan) -> float:
    """How far inside the budget a score is: 1 at the reference, 0 at the edge, < 0 outside (pure).

    `c` is a Candidate or a Score. With a worst-row budget (`min_row`), the smaller of both margins.
    """
    score = c.score if isinstance(c, Candidate) else c
    if score is None or not score.valid:
        return -1e9
    allowed = max(plan.budget.allowed(reference), 1e-12)
    out = (score.value - (reference - allowed)) / allowed
    worst = score.extra.get("cosine_min")
    if plan.budget.min_row is not None and worst is not None and plan.budget.min_row < 1:
        out = min(out, (worst - plan.budget.min_row) / (1 - plan.budget.min_row))
    return float(out)


def quantize_and_measure(
    basis: Basis,
    src: Path,
    recipes: list[Any],
    plan: Plan,
    judge: Judge,
    *,
    parts: dict[str, str] | None = None,
    parent: str = "",
    allow_sensitivity: bool = True,
) -> tuple[Outcome, Any]:
    """Quantize `src` with each recipe and measure; the outcome and the fastest recipe within budget.

    Args:
        parts: the composition the INT8 versions extend (default: the basis's); "int8" is set per recipe.
        parent: the candidate they must beat (default: the basis's best).
        allow_sensitivity: run the per-layer sensitivity search when every recipe breaks the budget.
    """
    rt = basis.rt
    base_parts = dict(parts if parts is not None else basis.parts)
    parent = parent or basis.best.name
    if plan.quick:  # the runtime's first recipe and the ones that need no calibration
        recipes = [r for i, r in enumerate(recipes) if i == 0 or r.mode != "static"]

    calib = calibration_feeds(judge.feed, judge.spec) if plan.calibrate else None
    cpu = "VNNI" if plan.vnni else "no VNNI"
    out = Outcome()
    tried: list[tuple[Candidate, Any]] = []

    def dst_for(tag: str) -> Path:
        return src.with_name(f"{src.stem}.int8-{tag}{rt.model_suffix}")

    def attempt(tag: str, r: Any, **aware: Any) -> Candidate | None:
        dst = dst_for(tag)
        cparts = base_parts | {"int8": r.name}
        try:
            note = rt.quantize(src, dst, r, calib, **aware)
        except Exception as exc:  # noqa: BLE001 - a failing recipe becomes a dropped candidate
            dropped = f"quantization failed: {exc}"[:300]
            out.candidates.append(Candidate(r.name, "int8", fp32=False, dropped=dropped, runtime=rt.name,
                                            parts=cparts, parent=parent))
            return None
        if note and r.mode == "static":
            out.notes.append(f"{r.name}: {note}")
        extra = [r.note, f"checked vs FP32 here ({cpu})"]
        c = judge.measure_file("", "int8", dst, basis.settings, basis.io, runtime=rt, fp32=False,
                               params=r.to_dict(), notes=[n for n in extra if n], parts=cparts, parent=parent)
        out.candidates.append(c)
        tried.append((c, r))
        return c

    for i, r in enumerate(recipes):
        if i and plan.time_left() <= 0:
            left = ", ".join(x.name for x in recipes[i:])
            out.notes.append(f"int8: {left} not tried: the time budget is spent")
            break
        attempt(str(i), r)
    ref = judge.reference_score
    wins = [(c, r) for c, r in tried if within(c, ref, plan.budget)]
    near = [(c, r) for c, r in tried if c.ok and not wins and slack(c, ref, plan) >= 1 - NEAR]
    if not wins and near and allow_sensitivity and plan.time_left() > 0:
        base = max(near, key=lambda cr: slack(cr[0], ref, plan))[1]
        wins += sensitivity(base, src, basis, plan, judge, out, attempt, calib)
    aware = rt.aware_recipe()
    if not wins and near and allow_sensitivity and aware is not None and calib and plan.time_left() > 0:
        c = attempt("aware", aware, validate=_validator(basis, plan, judge), validation=[judge.feed])
        if c is not None and within(c, ref, plan.budget):
            wins.append((c, aware))
    if not wins:
        return out, None
    best_c, best_r = max(wins, key=lambda w: speed(w[0], plan.target))
    for alt in [s for s in basis.alt_settings if s != basis.settings][:ALTERNATIVES]:
        if not best_c.model_path or plan.time_left() <= 0:
            break
        out.candidates.append(judge.measure_file(
            "", "int8", best_c.model_path, alt, basis.io, runtime=rt, fp32=False, params=best_r.to_dict(),
            parts=best_c.parts | {"settings": f"tuned: {alt.label()}"}, parent=best_c.name,
            notes=["the INT8 model with other settings that fit the budget (e.g. bf16 for the ops left in "
                   "float, or streams): quantized ops change what the fastest settings are"]))
    return out, best_r


def sensitivity(base: Any, src: Path, basis: Basis, plan: Plan, judge: Judge, out: Outcome,
                attempt: Any, calib: list[Feed] | None) -> list[tuple[Candidate, Any]]:
    """Rank weight groups by what keeping each in FP32 buys back; keep the worst in FP32 until within budget.

    Each group is quantized-out alone and scored (no timing) on the evaluation rows; then the top 1, 2,
    ... groups together are quantized out and measured in full. Returns the candidates within budget.
    """
    rt = basis.rt
    groups = sorted(rt.weight_groups(src).items(), key=lambda kv: -len(kv[1]))[: 3 if plan.quick else GROUPS]
    ref = judge.reference_score
    ranked: list[tuple[float, str, int]] = []
    for j, (group, nodes) in enumerate(groups):
        if plan.time_left() <= 0:
            out.notes.append("int8: sensitivity search stopped by the time budget")
            break
        r = rt.keep_fp32(base, group, len(nodes))
        dst = src.with_name(f"{src.stem}.int8-rank{j}{rt.model_suffix}")
        try:
            rt.quantize(src, dst, r, calib)
        except Exception:  # noqa: BLE001 - a group that cannot be left out is not ranked
            continue
        s = judge.score_file(dst, basis.settings, basis.io, rt)
        ranked.append((slack(s, ref, plan), group, len(nodes)))
    ranked.sort(key=lambda t: -t[0])
    if ranked:
        shown = ", ".join(f"{g} ({v:+.2f})" for v, g, _ in ranked)
        out.notes.append(f"int8 sensitivity ({base.name}): budget slack with each group kept FP32: {shown}")
    wins: list[tuple[Candidate, Any]] = []
    for k in range(1, len(ranked) + 1):
        if plan.time_left() <= 0:
            break
        keep = ranked[:k]
        kept: Any = rt.keep_fp32(base, "|".join(g for _, g, _ in keep), sum(n for _, _, n in keep))
        kept = replace(kept, name=f"{base.name}, {k} most sensitive group{'s' if k > 1 else ''} kept FP32")
        c = attempt(f"keep{k}", kept)
        if c is not None and within(c, ref, plan.budget):
            wins.append((c, kept))
            break
    return wins


def _validator(basis: Basis, plan: Plan, judge: Judge) -> Callable[[Runner], float]:
    """What an accuracy-aware recipe validates with: a runner -> budget slack (>= 0 within budget)."""

    def validate(run: Runner) -> float:
        out = run_all(run, judge.feed, judge.spec, basis.io)
        s = score_outputs(out, judge.reference, judge.task, metric=judge.metric, labels=judge.labels)
        return slack(s, judge.reference_score, plan)

    return validate


def calibration_feeds(feed: Feed, spec: SequenceSpec | None, n: int = CALIBRATION_ROWS,
                      batch: int = 8) -> list[Feed]:
    """Up to `n` rows spread over `feed`, in batches of `batch` (trimmed to their real length)."""
    rows = len(next(iter(feed.values())))
    idx = np.unique(np.linspace(0, rows - 1, num=min(n, rows)).astype(int))
    sub = take(feed, idx)
    return [
        trim(take(sub, slice(i, i + batch)), spec) if spec else take(sub, slice(i, i + batch))
        for i in range(0, len(idx), batch)
    ]
