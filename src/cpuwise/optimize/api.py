"""`cpuwise.optimize.optimize()`: try every technique that applies, measure each here, keep the best.

result = optimize(model, (ids, mask), eval_inputs=(ids_all, mask_all), task="embedding",
                  max_drop=0.01, target="throughput", out_dir="minilm-opt")
print(result.markdown)
predictor = cpuwise.optimize.load("minilm-opt")
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise import host
from cpuwise.errors import BudgetError, ConfigError
from cpuwise.optimize import passes as registry
from cpuwise.optimize import runtimes as runtime_registry
from cpuwise.optimize.deploy import artifact
from cpuwise.optimize.evaluate import TASKS, Score
from cpuwise.optimize.export import load_model
from cpuwise.optimize.io import SequenceSpec
from cpuwise.optimize.passes import Pass
from cpuwise.optimize.report import OptimizeReport, table_rows, to_markdown
from cpuwise.optimize.search import loop
from cpuwise.optimize.search.choose import TARGETS, Budget, Candidate, choose, pareto_front

ALL_PASSES = registry.REGISTERED  # the pass names `passes=` takes, in run order


@dataclass
class Result:
    """What `optimize()` found: every candidate, the front, the choice and where it was saved.

    With `optimize(out_dir=None)`, `out_dir` is a temporary folder holding only the chosen artifact
    (the other candidates' files are deleted, so their `model_path` no longer exists); the folder is
    removed when this Result is garbage-collected. It is None when nothing was chosen.
    """

    candidates: list[Candidate]
    chosen: Candidate | None
    front: list[Candidate]
    within_budget: bool
    message: str
    reference_score: Score
    rows: list[dict[str, Any]]
    out_dir: Path | None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def markdown(self) -> str:
        """The candidates table and the verdict, as markdown (what report.md holds)."""
        return to_markdown(self.rows, "cpuwise optimize") + "\n\n" + self.message

    def renderable(self) -> OptimizeReport:
        """The same for a rich console."""
        return OptimizeReport(self.rows, self.message)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what report.json holds)."""
        return {
            "message": self.message,
            "within_budget": self.within_budget,
            "chosen": self.chosen.name if self.chosen else None,
            "reference_score": self.reference_score.to_dict(),
            "rows": self.rows,
            "candidates": [c.to_dict() for c in self.candidates],
            "notes": self.notes,
            "extra": self.extra,
        }


def optimize(
    model: Any,
    example_inputs: Any = None,
    *,
    eval_inputs: Any = None,
    eval_labels: Any = None,
    metric: Callable[[np.ndarray, np.ndarray], float] | None = None,
    task: str = "generic",
    max_drop: float | str = 0.01,
    min_row_agreement: float | None = None,
    target: str = "latency",
    batch_size: int = 32,
    out_dir: str | Path | None = "cpuwise-optimized",
    passes: Sequence[str | Pass] | str = "auto",
    train_inputs: Any = None,
    input_names: list[str] | None = None,
    output_fn: Callable[[Any], Any] | None = None,
    tokenizer_file: str | Path | None = None,
    max_length: int | None = None,
    calibrate: bool = True,
    measure_reference: bool = True,
    quick: bool = False,
    strict: bool = False,
    time_budget_s: float = 120.0,
    runtimes: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Result:
    """Find the fastest way to run `model` on this CPU within `max_drop` of the FP32 reference.

    Args:
        model: a torch `nn.Module`, or a path to `.onnx` / `.pt2` / TorchScript `.pt`.
        example_inputs: a tuple of arrays/tensors the model is called with (defaults to eval_inputs).
        eval_inputs: rows used to score, time and calibrate candidates (a tuple in input order or a dict).
        eval_labels, metric: a user metric `metric(outputs, labels) -> float` (higher is better); without
            them agreement with the FP32 reference is used (cosine for "embedding", top-1 for "classifier").
        max_drop: allowed drop of the score, absolute (0.01) or relative ("1%").
        min_row_agreement: embeddings only: also require every row's cosine >= this (worst case).
        target: "latency" (p50 at batch 1) or "throughput" (samples/s at batch `batch_size`).
        passes: "auto" (every registered pass), or pass names (a list, or "io,int8") and/or Pass
            instances (e.g. `PrunePass(ratio=0.5)`); an unknown name is a ConfigError.
        train_inputs: rows for fine-tuning / distillation (defaults to eval_inputs, with a note).
        tokenizer_file: a tokenizers `tokenizer.json` to ship with the artifact so predict() takes text.
        calibrate: use eval_inputs to calibrate static INT8 (False: static falls back to dynamic).
        measure_reference: also time the torch model as given (the speed-up baseline); False saves time
            when an outside anchor is measured anyway (the baseline is then ORT FP32 with default settings).
        strict: raise BudgetError instead of keeping the best FP32 model when the budget is impossible
            (nothing is saved to `out_dir` then).
        time_budget_s: the search's time budget: branches that cannot catch up are pruned, distillation
            runs in "auto" only when its estimated training time fits, the runoff takes what is left.
        runtimes: the runtimes to search ("onnxruntime", "openvino"); None: every installed one.
        out_dir: where the chosen artifact is saved (`load(out_dir)`); None: a temporary folder owned by
            the Result (see `Result`).
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    if target not in TARGETS:
        raise ConfigError(f"target must be one of {TARGETS}, got {target!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    budget = Budget.parse(max_drop, min_row_agreement)
    selected = registry.select(passes)
    eval_inputs = eval_inputs if eval_inputs is not None else example_inputs
    if eval_inputs is None:
        raise ConfigError("expected eval_inputs (or example_inputs) to measure candidates with, got neither")
    source = load_model(model) if isinstance(model, (str, Path)) else None
    # out_dir=None: work in a temporary folder; only the chosen artifact survives (see _keep_only_chosen)
    tmp = Path(tempfile.mkdtemp(prefix="cpuwise-optimize-")) if out_dir is None else None
    work = Path(out_dir) / "candidates" if out_dir is not None else Path(str(tmp)) / "candidates"
    work.mkdir(parents=True, exist_ok=True)
    try:
        setup = loop.prepare(
            source or model,
            example_inputs,
            eval_inputs=eval_inputs,
            work=work,
            task=task,
            budget=budget,
            target=target,
            batch_size=batch_size,
            eval_labels=eval_labels,
            metric=metric,
            train_inputs=train_inputs,
            input_names=input_names,
            output_fn=output_fn,
            calibrate=calibrate,
            measure_reference=measure_reference,
            quick=quick,
            time_budget_s=time_budget_s,
            log=log,
            runtime_names=list(runtimes) if runtimes is not None else None,
            auto=isinstance(passes, str) and passes == "auto",
        )
        ref_score, spec = setup.reference_score, setup.judge.spec
        if budget.relative and abs(ref_score.value) <= 1e-12:
            raise ConfigError(
                f"a relative max_drop ({max_drop!r}) needs a reference score away from 0, found "
                f"{ref_score.value:g} ({ref_score.name}, task={task!r}), so any relative budget "
                "allows a drop of exactly 0. Fix: pass an absolute max_drop (e.g. max_drop=1e-4), or "
                "task='embedding' / 'classifier' (or a metric with eval_labels)"
            )
        found = loop.run(selected, setup)
        cands, baseline, notes = found.candidates, found.baseline, found.notes
        choice = choose(cands, ref_score.value, budget, target)
        front = pareto_front(cands, target)
        rows = table_rows(cands, baseline, ref_score.value, target, choice.chosen, front)
        dropped = [c for c in cands if c.dropped]
        if dropped:
            notes.append("dropped: " + "; ".join(f"{c.name} ({c.dropped})" for c in dropped))
        result = Result(
            cands,
            choice.chosen,
            front,
            choice.within_budget,
            choice.message,
            ref_score,
            rows,
            Path(out_dir) if out_dir is not None else None,
            notes,
            {
                "host": host.host_facts().to_dict(),
                "budget": budget.label(),
                "target": target,
                "sequence": spec.to_dict() if spec else None,
                "runtimes": [rt.name for rt in setup.runtimes],
                "runoff": found.runoff,
            },
        )
        if not choice.within_budget and strict:  # before saving: an out-of-budget model is never deployed
            raise BudgetError(f"{choice.message}\n{result.markdown}")
        if choice.chosen is not None:
            if tmp is not None:
                result.out_dir = tmp
            tok = tokenizer_file or (source.tokenizer_file if source is not None else None)
            _save(result, choice.chosen, spec, task, tok, max_length)
        if tmp is not None:
            _keep_only_chosen(result, tmp, work)
        return result
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _save(
    result: Result,
    chosen: Candidate,
    spec: SequenceSpec | None,
    task: str,
    tokenizer_file: str | Path | None,
    max_length: int | None,
) -> None:
    """Write the chosen candidate's artifact: its model, how it was measured (cpuwise.json), the reports."""
    assert chosen.model_path is not None and result.out_dir is not None
    rt = runtime_registry.get(chosen.runtime)
    inputs, output = rt.model_io(chosen.model_path)
    cfg = artifact.RunConfig(
        runtime=rt.name,
        inputs=inputs,
        output=output,
        session=chosen.settings or rt.default_settings(),
        io=chosen.io,
        sequence=spec if chosen.io.dynamic_padding else None,
        task=task,
        max_length=max_length,
        info={
            "chosen": chosen.to_dict(),
            "within_budget": result.within_budget,
            "message": result.message,
            "host": result.extra["host"],
        },
    )
    artifact.save(
        result.out_dir,
        chosen.model_path,
        cfg,
        tokenizer_file=tokenizer_file,
        report_md=result.markdown,
        report_json=result.to_dict(),
    )


def _keep_only_chosen(result: Result, tmp: Path, work: Path) -> None:
    """out_dir=None: delete the candidate files; the chosen artifact stays in `tmp` (= result.out_dir).

    The folder belongs to the Result: it is removed when the Result is garbage-collected (or at exit),
    so `load(result.out_dir)` works while the Result is alive. Other candidates' `model_path` are gone.
    """
    shutil.rmtree(work, ignore_errors=True)
    chosen = result.chosen
    if chosen is None or result.out_dir is None:
        shutil.rmtree(tmp, ignore_errors=True)
        result.out_dir = None
        return
    if chosen.model_path is not None and Path(chosen.model_path).resolve().is_relative_to(work.resolve()):
        chosen.model_path = str(tmp / ("model" + Path(chosen.model_path).suffix))
    weakref.finalize(result, shutil.rmtree, str(tmp), True)
