"""The search: export the model and fix the reference, then run the passes in order, each on the best so far.

    setup = prepare(model, eval_inputs=(x,), work=Path("out/candidates"), task="classifier")
    found = run(passes.select("auto"), setup)
    choice = choose(found.candidates, setup.reference_score.value, setup.plan.budget, setup.plan.target)

Every search starts from the torch model as given (the reference, when it is measured) and its exported
graph on each installed runtime with default settings: one *branch* per runtime. The graph passes (io,
session, fuse, int8) run in every live branch, each on that branch's `Basis` (the best way to run the
model found so far there); the loop moves the basis to the fastest lossless candidate after every pass
and takes the graph, fusion or INT8 recipe a pass hands on. After the session pass a branch more than
`PRUNE_RATIO` behind the leader is pruned (it cannot catch up: INT8 gains less than that over tuned
float), which keeps the search in its time budget. The torch passes (prune, lowrank, distill) then run
once, on the branch with the fastest candidate within budget. Last comes the runoff (see
`judge.runoff`): the finalists are re-timed in interleaved rounds and every candidate that measured
slower than its parent is dropped. Passes never see each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise import host
from cpuwise._optional import require
from cpuwise.errors import ConfigError
from cpuwise.optimize import runtimes
from cpuwise.optimize.bench import torch_runner
from cpuwise.optimize.evaluate import Score, score_outputs
from cpuwise.optimize.export import ModelSource, export_onnx, load_model
from cpuwise.optimize.hf import keyword_model
from cpuwise.optimize.inputs import as_feed, count_inputs, forward_names, is_texts, to_numpy, tokenize
from cpuwise.optimize.io import IOConfig, detect_sequence_spec
from cpuwise.optimize.passes import Basis, Pass, Plan
from cpuwise.optimize.runtimes import Runtime
from cpuwise.optimize.search.choose import Budget, Candidate, speed, within
from cpuwise.optimize.search.judge import Judge, reference_outputs

TRAINED_ON_EVAL = "no train_inputs: fine-tuning/distillation used eval_inputs, so their scores are optimistic"
PRUNE_AFTER = "session"  # branches are compared once each has its tuned settings
PRUNE_RATIO = 2.0  # a branch this many times slower than the leader is pruned (INT8 gains less over float)
FINALISTS = 5  # candidates within budget re-timed in the runoff (plus their parents and the fallback)


@dataclass
class Setup:
    """A prepared search: the plan, the judge, and the model as given."""

    plan: Plan
    judge: Judge
    module: Any  # the torch model; None when it was given as an ONNX file
    graph: Path  # its FP32 ONNX graph
    reference_score: Score
    runtimes: list[Runtime] = field(default_factory=list)  # the branches of the search


@dataclass
class Found:
    """Every candidate in the order measured, what speed-ups are relative to, and the search's notes."""

    candidates: list[Candidate]
    baseline: Candidate  # the torch model when it was measured and ran, else the default-settings graph
    notes: list[str]
    runoff: dict[str, Any] = field(default_factory=dict)  # what judge.runoff reported


def prepare(
    model: Any,
    example_inputs: Any = None,
    *,
    eval_inputs: Any,
    work: Path,
    task: str = "generic",
    budget: Budget | None = None,
    target: str = "latency",
    batch_size: int = 32,
    eval_labels: Any = None,
    metric: Callable[[np.ndarray, np.ndarray], float] | None = None,
    train_inputs: Any = None,
    input_names: list[str] | None = None,
    output_fn: Callable[[Any], Any] | None = None,
    calibrate: bool = True,
    measure_reference: bool = True,
    quick: bool = False,
    time_budget_s: float = 120.0,
    log: Callable[[str], None] | None = None,
    runtime_names: list[str] | None = None,
    auto: bool = False,
) -> Setup:
    """Export `model` to `work` (unless it is an ONNX file), compute the reference outputs, build the judge.

    The arguments are `optimize()`'s (see there); `model` may also be a `ModelSource` from `load_model`,
    and `work` is the folder for the candidates' files.
    """
    say = log or (lambda _m: None)
    started = time.perf_counter()
    branches = runtimes.installed(runtime_names)
    if not branches:
        raise ConfigError(
            f"expected an installed runtime among {runtime_names or sorted(runtimes.RUNTIMES)}, found none; "
            "fix: pip install 'cpuwise[optimize]' (ONNX Runtime) or 'cpuwise[openvino]'"
        )
    runtime = runtimes.get()
    if isinstance(model, ModelSource):  # already loaded from a file
        source: ModelSource | None = model
    else:
        source = load_model(model) if isinstance(model, (str, Path)) else None
    module = source.module if source is not None else model
    if source is not None and source.onnx_path is not None:
        graph = source.onnx_path
        names = [i["name"] for i in runtime.model_io(graph)[0]]
        module = None
    else:
        if source is not None and source.tokenizer_file is not None and is_texts(eval_inputs):
            eval_inputs = tokenize(source.tokenizer_file, eval_inputs, source.input_names or [])
            example_inputs = None
            train_inputs = (tokenize(source.tokenizer_file, train_inputs, source.input_names or [])
                            if is_texts(train_inputs) else train_inputs)
        n_inputs = count_inputs(eval_inputs)
        keyword = isinstance(eval_inputs, dict) or isinstance(example_inputs, dict)
        names = input_names or (source.input_names if source is not None else None) or (
            list(eval_inputs) if isinstance(eval_inputs, dict)
            else list(example_inputs) if isinstance(example_inputs, dict)
            else forward_names(module, n_inputs)
        )
        if keyword and (source is None or source.input_names is None):
            module = keyword_model(module, names)  # called model(**inputs): give the exporter positions
        if example_inputs is not None:
            ex_feed = as_feed(example_inputs, names)
        else:  # a couple of eval rows are enough to trace the model
            ex_feed = {k: v[: min(2, len(v))] for k, v in as_feed(eval_inputs, names).items()}
        torch = require("torch")
        graph = export_onnx(
            module, tuple(torch.from_numpy(ex_feed[n]) for n in names), work / "fp32.onnx", input_names=names
        )
        say(f"exported to {graph}")
    feed = as_feed(eval_inputs, names)
    spec = detect_sequence_spec(feed)
    labels = to_numpy(eval_labels) if eval_labels is not None else None
    plan = Plan(
        work=work,
        names=names,
        task=task,
        budget=budget or Budget(0.01),
        target=target,
        batch_size=batch_size,
        quick=quick,
        cores=host.usable_cores(),
        vnni=host.has_vnni(),
        output_fn=output_fn,
        train_feed=as_feed(train_inputs, names) if train_inputs is not None else None,
        time_budget_s=time_budget_s,
        calibrate=calibrate,
        measure_reference=measure_reference,
        auto=auto,
        deadline=started + time_budget_s,
    )
    reference = reference_outputs(module, graph, feed, names, spec, batch_size, output_fn, runtime)
    ref_score = score_outputs(reference, reference, task, metric=metric, labels=labels)
    judge = Judge(
        feed=feed,
        reference=reference,
        task=task,
        spec=spec,
        metric=metric,
        labels=labels,
        reference_score=ref_score.value,
        latency_requests=15 if quick else 50,
        repeats=1 if quick else 3,
        time_budget_s=6.0 if quick else 20.0,
        log=say,
        runtime=runtime,
        target=target,
    )
    return Setup(plan, judge, module, Path(graph), ref_score, branches)


def start(setup: Setup) -> tuple[list[Basis], list[Candidate], Candidate]:
    """The candidates every search begins with, the speed-up baseline, and one basis per runtime."""
    plan, judge = setup.plan, setup.judge
    cands: list[Candidate] = []
    fixed = IOConfig(dynamic_padding=False, batch_size=plan.batch_size)
    baseline: Candidate | None = None
    if setup.module is not None and plan.measure_reference:
        baseline = judge.measure(
            Candidate(REFERENCE, "reference", deployable=False, io=fixed, runtime="torch",
                      parts={"runtime": "PyTorch eager"}),
            torch_runner(setup.module, plan.names, plan.output_fn),
        )
        cands.append(baseline)
    bases = []
    for rt in setup.runtimes or [judge.runtime]:
        settings = rt.default_settings()
        parts = {"runtime": rt.title}
        technique = "onnx" if rt.name == runtimes.DEFAULT else "runtime"
        default = judge.measure_file(f"{rt.title} FP32, default settings", technique, setup.graph, settings,
                                     fixed, runtime=rt, parts=parts)
        cands.append(default)
        bases.append(Basis(graph=setup.graph, best=default, settings=settings, io=fixed, module=setup.module,
                           sequence=judge.spec, runtime=rt.name, parts=parts))
    first = next((c for c in cands if c.technique in ("onnx", "runtime") and c.ok), cands[-1])
    return bases, cands, baseline if baseline is not None and baseline.ok else first


REFERENCE = "PyTorch eager (reference)"


def run(passes: Sequence[Pass], setup: Setup) -> Found:
    """Run `passes` in the order given (see `passes.select`): the graph passes in every live runtime branch,
    the torch passes once on the best branch; then the runoff decides."""
    plan, judge = setup.plan, setup.judge
    bases, cands, baseline = start(setup)
    notes: list[str] = []
    live = {b.runtime: b for b in bases if b.best.ok} or {b.runtime: b for b in bases}
    for p in (p for p in passes if p.graph):
        if plan.time_left() <= 0 and not p.always:
            notes.append(f"{p.name}: skipped, the time budget ({plan.time_budget_s:g} s) is spent")
            continue
        for name, basis in list(live.items()):
            out = p.step(basis, plan, judge)
            cands += out.candidates
            notes += out.notes
            live[name] = (out.basis or basis).with_best(out.candidates, plan.target, judge.reference_score,
                                                         plan.budget)
        if p.name == PRUNE_AFTER and len(live) > 1:
            notes += _prune(live, cands, plan, judge)
    basis = live[_leader(live, cands, plan, judge.reference_score)]
    for p in (p for p in passes if not p.graph):
        if plan.time_left() <= 0:
            notes.append(f"{p.name}: skipped, the time budget ({plan.time_budget_s:g} s) is spent")
            continue
        out = p.step(basis, plan, judge)
        cands += out.candidates
        notes += out.notes
        basis = (out.basis or basis).with_best(out.candidates, plan.target, judge.reference_score,
                                               plan.budget)
    trained = {p.name for p in passes if p.trains}
    if setup.plan.train_feed is None and any(c.technique in trained and c.ok for c in cands):
        notes.append(TRAINED_ON_EVAL)
    runners = {}
    if baseline.name == REFERENCE and setup.module is not None:
        runners[REFERENCE] = torch_runner(setup.module, plan.names, plan.output_fn)
    finals = finalists(cands, plan, judge.reference_score)
    report: dict[str, Any] = {}
    if len(finals) > 1:
        budget_s = max(15.0, min(90.0, plan.time_left())) if not plan.quick else 8.0
        report = judge.runoff(finals, plan.target, runners, budget_s=budget_s,
                              rounds=(2, 4) if plan.quick else (3, 9))
        state = "stable" if report["stable"] else "NOT stable (the finalists are within the noise)"
        notes.append(f"runoff: {len(finals)} finalists re-timed in {report['rounds']} interleaved rounds; "
                     f"ranking {state}")
    notes += drop_slower_than_parent(cands, plan.target)
    return Found(cands, baseline, notes, report)


def _best_within(cands: list[Candidate], runtime: str, plan: Plan, reference: float) -> Candidate | None:
    fits = [c for c in cands if c.runtime == runtime and c.deployable and within(c, reference, plan.budget)]
    return max(fits, key=lambda c: speed(c, plan.target), default=None)


def _speed_of(c: Candidate | None, target: str) -> float:
    return speed(c, target) if c is not None else 0.0


def _leader(live: dict[str, Basis], cands: list[Candidate], plan: Plan, ref: float) -> str:
    return max(live, key=lambda n: _speed_of(_best_within(cands, n, plan, ref), plan.target))


def _prune(live: dict[str, Basis], cands: list[Candidate], plan: Plan, judge: Judge) -> list[str]:
    """Drop the branches more than PRUNE_RATIO slower than the leader, or all but it when time is up.

    One measurement each is not enough to cut a branch on a busy machine: when one looks dominated, the
    branches' best candidates are re-timed against each other in interleaved rounds first.
    """
    ref = judge.reference_score
    bests = {n: _best_within(cands, n, plan, ref) for n in live}
    speeds = {n: _speed_of(c, plan.target) for n, c in bests.items()}
    lead = max(speeds, key=lambda n: speeds[n])
    behind = [n for n in live if n != lead and speeds[n] * PRUNE_RATIO < speeds[lead]]
    timed = [c for c in bests.values() if c is not None]
    if behind and len(timed) > 1 and plan.time_left() > 0:
        judge.runoff(timed, plan.target, budget_s=max(10.0, min(30.0, plan.time_left() / 4)), rounds=(3, 5))
        speeds = {n: _speed_of(c, plan.target) for n, c in bests.items()}
        lead = max(speeds, key=lambda n: speeds[n])
    notes = []
    for n in list(live):
        slow = speeds[n] * PRUNE_RATIO < speeds[lead]
        if n != lead and (slow or plan.time_left() <= 0):
            why = (f"its best within budget ({speeds[n]:.4g}) is over {PRUNE_RATIO:g}x slower than "
                   f"{live[lead].rt.title}'s ({speeds[lead]:.4g}), re-timed side by side"
                   if slow else "the time budget is spent")
            notes.append(f"{live[n].rt.title} branch pruned after the {PRUNE_AFTER} pass: {why}")
            del live[n]
    return notes


def finalists(cands: list[Candidate], plan: Plan, reference: float) -> list[Candidate]:
    """The candidates the runoff re-times: the fastest within budget, their parents, the fallback and the
    reference (the speed-up baseline)."""
    ok = [c for c in cands if c.ok]
    by_name = {c.name: c for c in ok}
    fits = sorted((c for c in ok if c.deployable and within(c, reference, plan.budget)),
                  key=lambda c: -speed(c, plan.target))[:FINALISTS]
    lossless = [c for c in ok if c.deployable and c.fp32]
    picked: list[Candidate] = []

    def add(c: Candidate | None) -> None:
        while c is not None and all(c is not x for x in picked):
            picked.append(c)
            c = by_name.get(c.parent)

    for c in fits:
        add(c)
    if lossless:
        add(max(lossless, key=lambda c: speed(c, plan.target)))
    add(next((c for c in ok if c.technique == "reference"), None))
    return picked


def drop_slower_than_parent(cands: list[Candidate], target: str) -> list[str]:
    """Drop every candidate that measured slower than the candidate it adds one technique to."""
    by_name = {c.name: c for c in cands if c.ok}
    notes = []
    for c in cands:
        p = by_name.get(c.parent)
        if c.ok and p is not None and p is not c and speed(c, target) < speed(p, target):
            unit = "requests" if target == "latency" else "samples"
            c.dropped = (f"slower than its parent '{p.name}' ({speed(c, target):.4g} vs "
                         f"{speed(p, target):.4g} {unit}/s): the added technique does not pay here")
            notes.append(f"dropped {c.name}: {c.dropped}")
    return notes
