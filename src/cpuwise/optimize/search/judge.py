"""Turn a model file (or the torch reference) into a measured, scored Candidate; never raise.

The judge holds what every candidate is measured against (the evaluation rows, the reference outputs
and score, the timing budget and the runtime), so every pass measures the same way. A candidate that
crashes, returns NaN/inf, or returns the wrong shape is kept in the list with `dropped` set to the
reason, so the report can show it.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise.optimize import runtimes
from cpuwise.optimize.bench import BenchResult, measure, torch_runner
from cpuwise.optimize.evaluate import score_outputs
from cpuwise.optimize.io import Feed, IOConfig, SequenceSpec, run_all
from cpuwise.optimize.runtimes import Runner, Runtime
from cpuwise.optimize.search.choose import Candidate


@dataclass
class Judge:
    """Everything needed to measure and score candidates the same way."""

    feed: Feed
    reference: np.ndarray
    task: str
    spec: SequenceSpec | None = None
    metric: Callable[[np.ndarray, np.ndarray], float] | None = None
    labels: np.ndarray | None = None
    reference_score: float = 1.0
    latency_requests: int = 50
    repeats: int = 3
    time_budget_s: float = 20.0
    log: Callable[[str], None] = field(default=lambda _m: None)
    runtime: Runtime = field(default_factory=runtimes.get)

    def bench(self, run: Runner, io: IOConfig, *, sweep: bool = False) -> BenchResult:
        """Time `run` on the evaluation rows; `sweep`: the shorter timing used to compare settings."""
        if sweep:
            return measure(
                run,
                self.feed,
                spec=self.spec,
                io=io,
                latency_requests=min(20, self.latency_requests),
                repeats=1,
                time_budget_s=self.time_budget_s / 2,
            )
        return measure(
            run,
            self.feed,
            spec=self.spec,
            io=io,
            latency_requests=self.latency_requests,
            repeats=self.repeats,
            time_budget_s=self.time_budget_s,
        )

    def measure(self, cand: Candidate, run: Runner) -> Candidate:
        """Score then time `run` with the candidate's I/O config; sets `cand.dropped` on failure."""
        try:
            out = run_all(run, self.feed, self.spec, cand.io)
            cand.score = score_outputs(out, self.reference, self.task, metric=self.metric, labels=self.labels)
            if not cand.score.valid:
                cand.dropped = cand.score.reason
                self.log(f"dropped {cand.name}: {cand.dropped}")
                return cand
            cand.bench = self.bench(run, cand.io)
        except Exception as exc:  # noqa: BLE001 - a crashing candidate is reported, not fatal
            cand.dropped = f"crashed: {type(exc).__name__}: {first_line(exc)}"[:300]
            self.log(f"dropped {cand.name}: {cand.dropped}")
            if os.environ.get("CPUWISE_DEBUG"):
                traceback.print_exc()
            return cand
        self.log(
            f"{cand.name}: p50 {cand.bench.p50_ms:.2f} ms, {cand.bench.throughput:.0f}/s, "
            f"{cand.score.name} {cand.score.value:.4f}"
        )
        return cand

    def measure_file(
        self,
        name: str,
        technique: str,
        path: str | Path,
        settings: Any,
        io: IOConfig,
        *,
        fp32: bool = True,
        params: dict[str, Any] | None = None,
        notes: list[str] | None = None,
    ) -> Candidate:
        """The candidate `name` for the model file at `path`, run by the runtime with `settings` and `io`.

        `fp32`: True only for lossless graphs of the model as given (see `choose`).
        """
        cand = Candidate(
            name,
            technique,
            fp32=fp32,
            onnx_path=str(path),
            settings=settings,
            io=io,
            size_bytes=file_size(path),
            params=params or {},
            notes=list(notes or []),
        )
        try:
            session = self.runtime.session(path, settings)
        except Exception as exc:  # noqa: BLE001 - e.g. a quantized op with no CPU kernel
            cand.dropped = f"could not load in {self.runtime.title}: {str(exc).splitlines()[0]}"[:300]
            self.log(f"dropped {name}: {cand.dropped}")
            return cand
        return self.measure(cand, self.runtime.runner(session))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" when it has none): what a dropped candidate shows."""
    return str(exc).splitlines()[0] if str(exc) else ""


def file_size(path: str | Path | None) -> int:
    """Bytes of a model file, counting its external-data file when it has one."""
    if path is None:
        return 0
    p = Path(path)
    size = p.stat().st_size if p.is_file() else 0
    data = p.with_name(p.name + ".data")  # external-data ONNX models
    return size + (data.stat().st_size if data.is_file() else 0)


def reference_outputs(
    module: Any,
    onnx_path: Any,
    feed: Feed,
    names: list[str],
    spec: SequenceSpec | None,
    batch_size: int,
    output_fn: Callable[[Any], Any] | None,
    runtime: Runtime,
) -> np.ndarray:
    """The FP32 outputs everything is compared with: the torch model when given, else the ONNX graph."""
    io = IOConfig(dynamic_padding=False, batch_size=batch_size)
    if module is not None:
        return run_all(torch_runner(module, names, output_fn), feed, spec, io)
    return run_all(runtime.runner(runtime.session(onnx_path, runtime.reference_settings())), feed, spec, io)
