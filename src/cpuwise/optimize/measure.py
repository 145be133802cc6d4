"""Turn a model file (or the torch reference) into a measured, scored Candidate; never raise.

A candidate that crashes, returns NaN/inf, or returns the wrong shape is kept in the list with
`dropped` set to the reason, so the report can show it.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise.optimize.bench import IOConfig, measure, ort_runner, run_all
from cpuwise.optimize.evaluate import score_outputs
from cpuwise.optimize.io import Feed, SequenceSpec
from cpuwise.optimize.search import Candidate
from cpuwise.optimize.session import SessionSettings, make_session


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


def file_size(path: str | Path | None) -> int:
    if path is None:
        return 0
    p = Path(path)
    size = p.stat().st_size if p.is_file() else 0
    data = p.with_name(p.name + ".data")  # external-data ONNX models
    return size + (data.stat().st_size if data.is_file() else 0)


def judge_runner(cand: Candidate, run: Callable[[Feed], np.ndarray], judge: Judge) -> Candidate:
    """Score then time `run` with the candidate's I/O config; sets `cand.dropped` on failure."""
    try:
        out = run_all(run, judge.feed, judge.spec, cand.io)
        cand.score = score_outputs(out, judge.reference, judge.task, metric=judge.metric, labels=judge.labels)
        if not cand.score.valid:
            cand.dropped = cand.score.reason
            judge.log(f"dropped {cand.name}: {cand.dropped}")
            return cand
        cand.bench = measure(
            run,
            judge.feed,
            spec=judge.spec,
            io=cand.io,
            latency_requests=judge.latency_requests,
            repeats=judge.repeats,
            time_budget_s=judge.time_budget_s,
        )
    except Exception as exc:  # noqa: BLE001 - a crashing candidate is reported, not fatal
        cand.dropped = f"crashed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        judge.log(f"dropped {cand.name}: {cand.dropped}")
        if os.environ.get("CPUWISE_DEBUG"):
            traceback.print_exc()
        return cand
    judge.log(
        f"{cand.name}: p50 {cand.bench.p50_ms:.2f} ms, {cand.bench.throughput:.0f}/s, "
        f"{cand.score.name} {cand.score.value:.4f}"
    )
    return cand


def judge_onnx(
    name: str,
    technique: str,
    path: str | Path,
    settings: SessionSettings,
    io: IOConfig,
    judge: Judge,
    *,
    fp32: bool = True,
    params: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> Candidate:
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
        session = make_session(path, settings)
    except Exception as exc:  # noqa: BLE001 - e.g. a quantized op with no CPU kernel
        cand.dropped = f"could not load in ONNX Runtime: {str(exc).splitlines()[0]}"[:300]
        judge.log(f"dropped {name}: {cand.dropped}")
        return cand
    return judge_runner(cand, ort_runner(session), judge)


def tune_session(
    path: str | Path, grid: list[SessionSettings], io: IOConfig, judge: Judge, target: str
) -> tuple[SessionSettings, list[dict[str, Any]]]:
    """Measure each settings on the model; the fastest for `target` and the sweep table."""
    rows: list[dict[str, Any]] = []
    best: tuple[float, SessionSettings] | None = None
    for s in grid:
        try:
            res = measure(
                ort_runner(make_session(path, s)),
                judge.feed,
                spec=judge.spec,
                io=io,
                latency_requests=min(20, judge.latency_requests),
                repeats=1,
                time_budget_s=judge.time_budget_s / 2,
            )
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
