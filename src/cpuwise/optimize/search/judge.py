"""Turn a model file (or the torch reference) into a measured, scored Candidate; never raise.

The judge holds what every candidate is measured against (the evaluation rows, the reference outputs
and score, the timing budget), so every pass measures the same way on whichever runtime it uses. A
candidate that crashes, returns NaN/inf, or returns the wrong shape is kept in the list with `dropped`
set to the reason, so the report can show it.

One measurement per candidate is what the search steers by; the decision is made by `runoff`: the
finalists are re-timed in interleaved rounds (A B C, C B A, ...) until their ranking holds for two
rounds in a row (or the rounds run out, which the result reports), so every finalist meets the same
load, and a candidate that measures slower than its parent (the candidate it adds one technique to)
is dropped: no technique survives that does not pay on this machine.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise.optimize import runtimes
from cpuwise.optimize.bench import BenchResult, measure, single_rows, torch_runner
from cpuwise.optimize.evaluate import Score, score_outputs
from cpuwise.optimize.io import Feed, IOConfig, SequenceSpec, run_all, take
from cpuwise.optimize.runtimes import Runner, Runtime
from cpuwise.optimize.search.choose import Candidate, compose, speed

RUNOFF_ROUNDS = (3, 9)  # at least 3 interleaved rounds; at most 9 when the ranking keeps changing
RUNOFF_ROWS = 256  # rows per throughput round (spread over the evaluation rows)
TIMING_ROWS = 192  # rows a candidate's throughput is first timed on (three batches of 64)
RUNOFF_SINGLES = 16  # single-row requests per latency round
# Pause before each timing: ORT's and OpenMP's worker threads spin for a while after a call (torch's for
# a while with GNU OpenMP defaults), which would slow whichever candidate runs next.
RUNOFF_GAP_S = 0.05


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
    target: str = ""  # "latency" / "throughput": the other measurement is taken briefly ("": both in full)

    def timing_feed(self) -> Feed:
        """Up to TIMING_ROWS evaluation rows spread over all of them: what candidates are timed on (every
        row is still scored)."""
        rows = len(next(iter(self.feed.values())))
        if rows <= TIMING_ROWS:
            return self.feed
        return take(self.feed, np.unique(np.linspace(0, rows - 1, num=TIMING_ROWS).astype(int)))

    def bench(self, run: Runner, io: IOConfig, *, sweep: bool = False) -> BenchResult:
        """Time `run` on the evaluation rows; `sweep`: the shorter timing used to compare settings."""
        feed = self.timing_feed()
        if sweep:
            return measure(
                run,
                feed,
                spec=self.spec,
                io=io,
                latency_requests=min(20, self.latency_requests),
                repeats=1,
                time_budget_s=self.time_budget_s / 2,
            )
        # the number the target does not decide on is still reported, from a shorter measurement
        return measure(
            run,
            feed,
            spec=self.spec,
            io=io,
            latency_requests=min(10, self.latency_requests) if self.target == "throughput"
            else self.latency_requests,
            repeats=1 if self.target == "latency" else self.repeats,
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
        runtime: Runtime | None = None,
        fp32: bool = True,
        params: dict[str, Any] | None = None,
        notes: list[str] | None = None,
        parts: dict[str, str] | None = None,
        parent: str = "",
    ) -> Candidate:
        """The candidate for the model file at `path`, run by `runtime` (default: the judge's) with
        `settings` and `io`; named `name`, or after its `parts` (the composition) when `name` is "".

        `fp32`: True only for lossless graphs of the model as given (see `choose`); settings that compute
        in lower precision (OpenVINO bf16) make any candidate lossy.
        """
        rt = runtime or self.runtime
        parts = dict(parts or {})
        cand = Candidate(
            name or compose(parts),
            technique,
            fp32=fp32 and rt.lossless(settings),
            model_path=str(path),
            settings=settings,
            io=io,
            size_bytes=file_size(path),
            params=params or {},
            notes=list(notes or []),
            runtime=rt.name,
            parts=parts,
            parent=parent,
        )
        try:
            session = rt.session(path, settings)
        except Exception as exc:  # noqa: BLE001 - e.g. a quantized op with no CPU kernel
            cand.dropped = f"could not load in {rt.title}: {first_line(exc)}"[:300]
            self.log(f"dropped {cand.name}: {cand.dropped}")
            return cand
        return self.measure(cand, rt.runner(session))

    def score_file(self, path: str | Path, settings: Any, io: IOConfig, runtime: Runtime,
                   feed: Feed | None = None, reference: np.ndarray | None = None) -> Score:
        """Only the score of a model file (no timing): what a sensitivity search compares."""
        feed = self.feed if feed is None else feed
        ref = self.reference if reference is None else reference
        try:
            run = runtime.runner(runtime.session(path, settings))
            out = run_all(run, feed, self.spec, io)
        except Exception as exc:  # noqa: BLE001 - a model that does not run scores as invalid
            return Score(float("nan"), "crashed", valid=False, reason=first_line(exc))
        return score_outputs(out, ref, self.task, metric=self.metric,
                             labels=self.labels if feed is self.feed else None)

    def runoff(self, cands: list[Candidate], target: str, runners: dict[str, Runner] | None = None,
               *, budget_s: float = 60.0, rounds: tuple[int, int] = RUNOFF_ROUNDS) -> dict[str, Any]:
        """Re-time `cands` in interleaved rounds until their ranking holds; their benches get the medians.

        Each round times every candidate once (alternating the order), on the same rows. The ranking of
        the three fastest must be the same after two consecutive rounds (at least `rounds[0]`, at most
        `rounds[1]`, within `budget_s`). `runners` supplies runners for candidates without a model file
        (the torch reference). Returns {"stable", "rounds", "order", "spread"} for the report.
        """
        live: list[tuple[Candidate, Runner]] = []
        for c in cands:
            try:
                if c.model_path:
                    rt = runtimes.get(c.runtime)
                    run = rt.runner(rt.session(c.model_path, c.settings))
                else:
                    run = (runners or {})[c.name]
                self._time_once(run, c.io, target)  # warm-up: first calls compile shapes
                live.append((c, run))
            except Exception as exc:  # noqa: BLE001 - a finalist that no longer runs is left as measured
                self.log(f"runoff: {c.name} left out ({first_line(exc)})")
        samples: dict[int, list[float]] = {id(c): [] for c, _ in live}
        deadline = time.perf_counter() + budget_s
        last: list[int] | None = None
        stable, done = False, 0
        for r in range(rounds[1]):
            for c, run in (live if r % 2 == 0 else live[::-1]):
                time.sleep(RUNOFF_GAP_S)  # the previous candidate's spinning threads go idle first
                samples[id(c)].append(self._time_once(run, c.io, target))
            done = r + 1
            med = {k: float(np.median(v)) for k, v in samples.items()}
            order = sorted(med, key=lambda k: -med[k])[:3]
            if done >= rounds[0] and order == last:
                stable = True
                break
            last = order
            if time.perf_counter() > deadline and done >= 2:
                break
        spread: dict[str, float] = {}
        for c, _ in live:
            v = np.array(samples[id(c)])
            value = float(np.median(v))
            if c.bench is not None:
                if target == "latency":
                    c.bench.p50_ms = 1000.0 / value
                else:
                    c.bench.throughput = value
                c.bench.extra["runoff"] = [round(float(x), 3) for x in v]
            spread[c.name] = float((v.max() - v.min()) / value) if value else 0.0
        ranked = sorted((c for c, _ in live if c.bench is not None), key=lambda c: -speed(c, target))
        return {"stable": stable, "rounds": done, "order": [c.name for c in ranked], "spread": spread}

    def _time_once(self, run: Runner, io: IOConfig, target: str) -> float:
        """One timing: samples/s over the runoff rows (throughput) or 1000 / median ms per request."""
        rows = len(next(iter(self.feed.values())))
        if target == "latency":
            singles = single_rows(self.feed, RUNOFF_SINGLES, self.spec, io)
            times = []
            for f in singles:
                t0 = time.perf_counter()
                run(f)
                times.append(time.perf_counter() - t0)
            return 1.0 / float(np.median(times))
        idx = np.unique(np.linspace(0, rows - 1, num=min(RUNOFF_ROWS, rows)).astype(int))
        sub = take(self.feed, idx)
        t0 = time.perf_counter()
        run_all(run, sub, self.spec, io)
        return len(idx) / (time.perf_counter() - t0)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" when it has none): what a dropped candidate shows."""
    return str(exc).splitlines()[0] if str(exc) else ""


def file_size(path: str | Path | None) -> int:
    """Bytes of a model file, counting its external-data file (ONNX) or its weights (OpenVINO .bin)."""
    if path is None:
        return 0
    p = Path(path)
    size = p.stat().st_size if p.is_file() else 0
    data = p.with_suffix(".bin") if p.suffix == ".xml" else p.with_name(p.name + ".data")
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
