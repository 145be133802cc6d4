"""Produce and measure the candidates: ORT FP32, tuned session, dynamic padding, INT8 recipes, torch passes.

Each stage builds on the best of the previous one (settings and I/O from the FP32 stages are reused by
every later candidate; the INT8 recipe that wins on the base model is applied to pruned / low-rank /
distilled models).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise._optional import require
from cpuwise.optimize.bench import torch_runner
from cpuwise.optimize.export import export_onnx
from cpuwise.optimize.io import Feed, IOConfig, SequenceSpec, plan_batches, take, trim
from cpuwise.optimize.runtimes import onnxruntime as q
from cpuwise.optimize.runtimes.onnxruntime import SessionSettings, make_session, ort_runner, settings_grid
from cpuwise.optimize.search.choose import Budget, Candidate, speed, within
from cpuwise.optimize.search.judge import Judge


def judge_runner(c: Candidate, run: Any, judge: Judge) -> Candidate:
    return judge.measure(c, run)


def judge_onnx(name: str, technique: str, path: Any, settings: Any, io: IOConfig, judge: Judge,
               **kw: Any) -> Candidate:
    return judge.measure_file(name, technique, path, settings, io, **kw)


def tune_session(
    path: str | Path, grid: list[SessionSettings], io: IOConfig, judge: Judge, target: str
) -> tuple[SessionSettings, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    best: tuple[float, SessionSettings] | None = None
    for s in grid:
        try:
            res = judge.bench(ort_runner(make_session(path, s)), io, sweep=True)
        except Exception as exc:  # noqa: BLE001 - a setting ORT rejects is skipped
            rows.append({"settings": s.to_dict(), "error": str(exc).splitlines()[0]})
            continue
        value = 1000 / res.p50_ms if target == "latency" else res.throughput
        rows.append({"settings": s.to_dict(), "p50_ms": res.p50_ms, "throughput": res.throughput})
        if best is None or value > best[0]:
            best = (value, s)
    if best is None:
        return SessionSettings(), rows
    return best[1], rows


@dataclass
class Plan:
    passes: Sequence[Any] | str
    quick: bool
    batch_size: int
    target: str
    work: Path
    names: list[str]
    cores: int
    vnni: bool
    task: str
    budget: Budget
    output_fn: Callable[[Any], Any] | None = None
    train_feed: Feed | None = None
    time_budget_s: float = 120.0
    calibrate: bool = True
    measure_reference: bool = True
    fuse: bool = False  # set when transformer fusion applied: torch-pass models are fused too
    attention: tuple[int, int] | None = None  # (num_heads, hidden_size) hint for fusion

    def wants(self, name: str) -> bool:
        if self.passes == "auto":
            return True
        return any(p == name or getattr(p, "name", None) == name for p in self.passes)


def _calibration(feed: Feed, spec: SequenceSpec | None, n: int = 64, batch: int = 8) -> list[Feed]:
    rows = len(next(iter(feed.values())))
    idx = np.unique(np.linspace(0, rows - 1, num=min(n, rows)).astype(int))
    sub = take(feed, idx)
    return [
        trim(take(sub, slice(i, i + batch)), spec) if spec else take(sub, slice(i, i + batch))
        for i in range(0, len(idx), batch)
    ]


def run_all_candidates(
    plan: Plan, judge: Judge, module: Any, fp32: Path, notes: list[str]
) -> tuple[list[Candidate], Candidate]:
    cands: list[Candidate] = []
    fixed = IOConfig(dynamic_padding=False, batch_size=plan.batch_size)
    baseline: Candidate | None = None
    if module is not None and plan.measure_reference:
        baseline = judge_runner(
            Candidate("PyTorch eager (reference)", "reference", deployable=False, io=fixed),
            torch_runner(module, plan.names, plan.output_fn),
            judge,
        )
        cands.append(baseline)
    default = judge_onnx("ONNX Runtime FP32, default session", "onnx", fp32, SessionSettings(), fixed, judge)
    cands.append(default)
    baseline = baseline if baseline is not None and baseline.ok else default
    settings: Any = SessionSettings()
    io, best = fixed, default
    if plan.wants("io") and judge.spec is not None:  # first: it makes every later measurement cheaper
        dyn = IOConfig(dynamic_padding=True, batch_size=plan.batch_size)
        note = f"pad to the batch's longest row (multiple of {dyn.bucket_multiple}), length-sorted batches"
        padded = judge_onnx("ONNX FP32 + dynamic padding", "io", fp32, settings, dyn, judge, notes=[note])
        cands.append(padded)
        best = _faster(padded, best, plan.target)
    if plan.wants("session"):
        grid = settings_grid(plan.cores, quick=plan.quick)
        tuned_settings, sweep = tune_session(fp32, grid, best.io, judge, plan.target)
        tuned = judge_onnx(
            "ONNX FP32 + tuned session" + (" + dynamic padding" if best.io.dynamic_padding else ""),
            "session",
            fp32,
            tuned_settings,
            best.io,
            judge,
            params={"sweep": sweep},
            notes=[tuned_settings.label()],
        )
        cands.append(tuned)
        best = _faster(tuned, best, plan.target)
    settings = best.settings or settings
    io = best.io
    base = fp32
    fused = _maybe_fuse(plan, fp32, judge, settings, io, cands) if plan.wants("fuse") else None
    if fused is not None:
        base, plan.fuse = fused, True
    int8_recipe = q.SAFE_S8 if not plan.vnni else q.ORT_DEFAULT
    if plan.wants("int8"):
        int8_recipe = _int8_stage(plan, judge, base, settings, io, cands, notes, "") or int8_recipe
    for tp in _torch_passes(plan, module, notes):
        _torch_stage(tp, plan, judge, module, settings, io, int8_recipe, cands, notes)
    return cands, baseline


def _maybe_fuse(
    plan: Plan, src: Path, judge: Judge, settings: SessionSettings, io: IOConfig, cands: list[Candidate]
) -> Path | None:
    """Fuse transformer subgraphs; the fused graph becomes the base for INT8 when it fuses anything.

    INT8 goes on the fused graph even when fused FP32 alone is not faster: ORT's quantized attention
    is where fusion pays (and every INT8 candidate is measured anyway).
    """
    from cpuwise.optimize.fuse import fuse_transformer

    dst = src.with_name(src.stem + ".fused.onnx")
    try:
        stats = fuse_transformer(src, dst, plan.attention)
    except Exception as exc:  # noqa: BLE001 - fusion is an optional optimisation
        cands.append(
            Candidate("ONNX FP32 + transformer fusion", "fuse", dropped=f"fusion failed: {exc}"[:300])
        )
        return None
    if stats is None:
        return None
    shown = ", ".join(f"{k} x{v}" for k, v in stats.items())
    c = judge_onnx(
        "ONNX FP32 + transformer fusion",
        "fuse",
        dst,
        settings,
        io,
        judge,
        params=stats,
        notes=[f"ORT transformer optimizer: {shown}"],
    )
    cands.append(c)
    return dst if c.ok else None


def _faster(a: Candidate, b: Candidate, target: str) -> Candidate:
    if not a.ok:
        return b
    if not b.ok:
        return a
    return a if speed(a, target) > speed(b, target) else b


def _int8_stage(
    plan: Plan,
    judge: Judge,
    src: Path,
    settings: SessionSettings,
    io: IOConfig,
    cands: list[Candidate],
    notes: list[str],
    prefix: str,
    recipes: list[q.Recipe] | None = None,
    allow_keep_fp32: bool = True,
) -> q.Recipe | None:
    """Quantize `src` with each recipe and measure; returns the fastest recipe within budget."""
    recipes = recipes or q.recipes_for(plan.vnni, have_calibration=True)
    if plan.quick:
        recipes = [r for r in recipes if r.mode == "dynamic"]
    calib = _calibration(judge.feed, judge.spec) if plan.calibrate else None
    cpu = "VNNI" if plan.vnni else "no VNNI"
    tried: list[tuple[Candidate, q.Recipe]] = []

    def attempt(tag: str, r: q.Recipe) -> None:
        dst = src.with_name(f"{src.stem}.int8-{tag}.onnx")
        name = f"{prefix}{r.name}"
        try:
            note = q.quantize(src, dst, r, calibration=calib)
        except Exception as exc:  # noqa: BLE001 - a failing recipe becomes a dropped candidate
            cands.append(Candidate(name, "int8", fp32=False, dropped=f"quantization failed: {exc}"[:300]))
            return
        if note:
            notes.append(f"{name}: {note}; not measured twice")
            return
        extra = [r.note, f"checked vs FP32 here ({cpu})"]
        c = judge_onnx(
            name,
            "int8",
            dst,
            settings,
            io,
            judge,
            fp32=False,
            params=r.to_dict(),
            notes=[n for n in extra if n],
        )
        cands.append(c)
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
        assert all(c.score is not None for c, _ in dynamic)
        base = max(dynamic, key=lambda cr: cr[0].score.value if cr[0].score else 0.0)[1]
        groups = sorted(q.weight_groups(src).items(), key=lambda kv: -len(kv[1]))[: 2 if plan.quick else 4]
        for j, (group, nodes) in enumerate(groups):
            attempt(f"x{j}", q.keep_fp32(base, group, len(nodes)))
        wins = [(c, r) for c, r in tried if within(c, judge.reference_score, plan.budget)]
    if not wins:
        return None
    return max(wins, key=lambda w: speed(w[0], plan.target))[1]


def _torch_passes(plan: Plan, module: Any, notes: list[str]) -> list[Any]:
    if module is None:
        return []
    wanted = [p for p in ([] if plan.passes == "auto" else plan.passes) if not isinstance(p, str)]
    names = (
        ("prune", "lowrank", "distill")
        if plan.passes == "auto"
        else [p for p in plan.passes if isinstance(p, str)]
    )
    for name in names:
        if name not in ("prune", "lowrank", "distill"):
            continue
        cls_name = {"prune": "PrunePass", "lowrank": "LowRankPass", "distill": "DistillPass"}[name]
        try:
            mod = __import__(f"cpuwise.optimize.passes.{name}", fromlist=[cls_name])
            wanted.append(getattr(mod, cls_name)())
        except (ImportError, AttributeError) as exc:
            notes.append(f"{name}: pass not available ({exc})")
    return wanted


def _train_batches(plan: Plan, judge: Judge) -> Callable[[], Iterable[tuple[tuple[Any, ...], Any]]]:
    torch = require("torch")
    feed = plan.train_feed if plan.train_feed is not None else judge.feed
    spec = judge.spec
    rows = len(next(iter(feed.values())))
    bs = 32

    def batches() -> Iterable[tuple[tuple[Any, ...], Any]]:
        if spec is not None:
            from cpuwise.optimize.io import lengths

            order = plan_batches(lengths(feed, spec), bs)
            rng = np.random.default_rng(0)
            order = [order[i] for i in rng.permutation(len(order))]
        else:
            order = [np.arange(i, min(rows, i + bs)) for i in range(0, rows, bs)]
        for idx in order:
            part = take(feed, idx)
            if spec is not None:
                part = trim(part, spec)
            yield tuple(torch.from_numpy(np.ascontiguousarray(part[n])) for n in plan.names), None

    return batches


def _same_weights(a: Any, b: Any) -> bool:
    """True when two torch modules have identical state dicts (a pass that changed nothing)."""
    torch = require("torch")
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa
    )


def _torch_stage(
    tp: Any,
    plan: Plan,
    judge: Judge,
    module: Any,
    settings: SessionSettings,
    io: IOConfig,
    recipe: q.Recipe,
    cands: list[Candidate],
    notes: list[str],
) -> None:
    from cpuwise.optimize.passes.base import PassContext

    torch = require("torch")
    name = getattr(tp, "name", type(tp).__name__)
    example = take(judge.feed, slice(0, 2))
    if judge.spec is not None:
        example = trim(example, judge.spec)
    ctx = PassContext(
        example_inputs=tuple(torch.from_numpy(np.ascontiguousarray(example[n])) for n in plan.names),
        train_batches=_train_batches(plan, judge),
        task=plan.task,
        output_fn=plan.output_fn,
        time_budget_s=plan.time_budget_s / 3 if not plan.quick else 10.0,
    )
    try:
        if not tp.applies(module, ctx):
            notes.append(f"{name}: does not apply to this model")
            return
        res = tp.run(module, ctx)
        if _same_weights(module, res.model):
            notes.append(
                f"{name}: left the model unchanged ({'; '.join(res.notes)[:120]}); not measured again"
            )
            return
        path = export_onnx(res.model, ctx.example_inputs, plan.work / f"{name}.onnx", input_names=plan.names)
    except Exception as exc:  # noqa: BLE001 - a failing pass is reported, the search goes on
        msg = str(exc).splitlines()[0] if str(exc) else ""
        cands.append(Candidate(name, name, fp32=False, dropped=f"crashed: {type(exc).__name__}: {msg}"[:300]))
        return
    shown = [
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in res.params.items()
        if isinstance(v, (int, float, str)) and not isinstance(v, bool)
    ][:3]
    label = name + (f" ({', '.join(shown)})" if shown else "")
    if plan.fuse:
        from cpuwise.optimize.fuse import fuse_transformer

        fused = path.with_name(path.stem + ".fused.onnx")
        try:
            path = fused if fuse_transformer(path, fused, plan.attention) is not None else path
        except Exception:  # noqa: BLE001 - keep the unfused graph
            pass
    # fp32=False: a changed model is not lossless, so it may never be the budget-impossible fallback
    c = judge_onnx(
        label, name, path, settings, io, judge, fp32=False, params=res.params, notes=list(res.notes)
    )
    cands.append(c)
    if plan.wants("int8") and c.ok:
        # keeping layers in float only pays when the FP32 student itself is within budget
        fits = within(c, judge.reference_score, plan.budget)
        _int8_stage(
            plan, judge, path, settings, io, cands, notes, f"{name} + ", [recipe], allow_keep_fp32=fits
        )
