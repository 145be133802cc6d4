"""ONNX Runtime session settings: a plain record, the grid worth measuring, and session construction.

Spinning (`allow_spinning`) makes idle ORT threads busy-wait for the next op; it lowers latency on a
quiet machine and wastes cores on a busy one, so it is measured, not assumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cpuwise._optional import require

GRAPH_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class SessionSettings:
    """How to build an `onnxruntime.InferenceSession`."""

    graph_level: str = "all"
    intra_op_threads: int = 0  # 0 = ORT's default (one per physical core)
    inter_op_threads: int = 1
    spinning: bool = True
    execution_mode: str = "sequential"  # or "parallel" (only helps graphs with independent branches)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionSettings:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def label(self) -> str:
        spin = "spin" if self.spinning else "no-spin"
        return f"{self.graph_level}, {self.intra_op_threads or 'default'} threads, {spin}"


def settings_grid(cores: int, *, quick: bool = False) -> list[SessionSettings]:
    """The settings worth measuring for `cores` usable cores (pure)."""
    threads = sorted({1, max(1, cores // 2), cores})
    levels = ("all",) if quick else ("extended", "all")
    grid = [
        SessionSettings(graph_level=lv, intra_op_threads=t, spinning=spin)
        for lv in levels
        for t in threads
        for spin in (True, False)
        if not (t == 1 and not spin)  # spinning is irrelevant with one thread
    ]
    if cores >= 4 and not quick:
        grid.append(
            SessionSettings(intra_op_threads=cores // 2, inter_op_threads=2, execution_mode="parallel")
        )
    return grid


def sweep_threads(cores: int) -> list[int]:
    """Thread counts for a sweep: powers of two up to `cores`, plus `cores` itself (pure)."""
    out, t = {max(1, cores)}, 1
    while t < cores:
        out.add(t)
        t *= 2
    return sorted(out)


def with_threads(s: SessionSettings, threads: int) -> SessionSettings:
    return replace(s, intra_op_threads=threads)


def make_session(model: str | Path | bytes, settings: SessionSettings | None = None) -> Any:
    """An `onnxruntime.InferenceSession` on the CPU provider built with `settings`."""
    ort = require("onnxruntime", extra="optimize", purpose="running ONNX models")
    s = settings or SessionSettings()
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[s.graph_level]
    so.intra_op_num_threads = s.intra_op_threads
    so.inter_op_num_threads = s.inter_op_threads
    so.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if s.execution_mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    spin = "1" if s.spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    so.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def input_names(session: Any) -> list[str]:
    return [i.name for i in session.get_inputs()]
