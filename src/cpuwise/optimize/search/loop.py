"""The search: export the model and fix the reference, then run the passes in order, each on the best so far.

    setup = prepare(model, eval_inputs=(x,), work=Path("out/candidates"), task="classifier")
    found = run(passes.select("auto"), setup)
    choice = choose(found.candidates, setup.reference_score.value, setup.plan.budget, setup.plan.target)

Every search starts from the same two candidates: the torch model as given (the reference, when it is
measured) and its exported graph with the runtime's default settings. Then each pass gets the `Basis`
(the best way to run the model found so far) and returns measured candidates; the loop moves the basis
to the fastest lossless candidate after every pass, and takes the graph, fusion or INT8 recipe a pass
hands on. Passes never see each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise import host
from cpuwise._optional import require
from cpuwise.optimize import runtimes
from cpuwise.optimize.bench import torch_runner
from cpuwise.optimize.evaluate import Score, score_outputs
from cpuwise.optimize.export import ModelSource, export_onnx, load_model
from cpuwise.optimize.inputs import as_feed, count_inputs, forward_names, to_numpy
from cpuwise.optimize.io import IOConfig, detect_sequence_spec
from cpuwise.optimize.passes import Basis, Pass, Plan
from cpuwise.optimize.search.choose import Budget, Candidate
from cpuwise.optimize.search.judge import Judge, reference_outputs

TRAINED_ON_EVAL = "no train_inputs: fine-tuning/distillation used eval_inputs, so their scores are optimistic"


@dataclass
class Setup:
    """A prepared search: the plan, the judge, and the model as given."""

    plan: Plan
    judge: Judge
    module: Any  # the torch model; None when it was given as an ONNX file
    graph: Path  # its FP32 ONNX graph
    reference_score: Score


@dataclass
class Found:
    """Every candidate in the order measured, what speed-ups are relative to, and the search's notes."""

    candidates: list[Candidate]
    baseline: Candidate  # the torch model when it was measured and ran, else the default-settings graph
    notes: list[str]


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
) -> Setup:
    """Export `model` to `work` (unless it is an ONNX file), compute the reference outputs, build the judge.

    The arguments are `optimize()`'s (see there); `model` may also be a `ModelSource` from `load_model`,
    and `work` is the folder for the candidates' files.
    """
    say = log or (lambda _m: None)
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
        n_inputs = count_inputs(eval_inputs)
        names = input_names or (
            list(eval_inputs) if isinstance(eval_inputs, dict) else forward_names(module, n_inputs)
        )
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
    )
    return Setup(plan, judge, module, Path(graph), ref_score)


def start(setup: Setup) -> tuple[Basis, list[Candidate], Candidate]:
    """The candidates every search begins with, the speed-up baseline, and the basis for the first pass."""
    plan, judge = setup.plan, setup.judge
    cands: list[Candidate] = []
    fixed = IOConfig(dynamic_padding=False, batch_size=plan.batch_size)
    baseline: Candidate | None = None
    if setup.module is not None and plan.measure_reference:
        baseline = judge.measure(
            Candidate("PyTorch eager (reference)", "reference", deployable=False, io=fixed),
            torch_runner(setup.module, plan.names, plan.output_fn),
        )
        cands.append(baseline)
    settings = judge.runtime.default_settings()
    default = judge.measure_file("ONNX Runtime FP32, default session", "onnx", setup.graph, settings, fixed)
    cands.append(default)
    basis = Basis(
        graph=setup.graph,
        best=default,
        settings=settings,
        io=fixed,
        module=setup.module,
        sequence=judge.spec,
    )
    return basis, cands, baseline if baseline is not None and baseline.ok else default


def run(passes: Sequence[Pass], setup: Setup) -> Found:
    """Run `passes` in the order given (see `passes.select`), each on the basis the earlier ones left."""
    basis, cands, baseline = start(setup)
    notes: list[str] = []
    for p in passes:
        out = p.step(basis, setup.plan, setup.judge)
        cands += out.candidates
        notes += out.notes
        basis = (out.basis or basis).with_best(out.candidates, setup.plan.target)
    trained = {p.name for p in passes if p.trains}
    if setup.plan.train_feed is None and any(c.technique in trained for c in cands):
        notes.append(TRAINED_ON_EVAL)
    return Found(cands, baseline, notes)
