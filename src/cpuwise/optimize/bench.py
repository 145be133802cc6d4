"""Measure a runner on this CPU: p50/p90 latency at batch 1, throughput at batch N, memory.

A *runner* is any `Callable[[Feed], np.ndarray]` (an ORT session, a torch module). Latency is timed per
single-row request (each trimmed to its own bucketed length when dynamic padding is on); throughput runs
all rows in batches of `batch_size`. Both warm up first; latency gives percentiles, throughput the
best of `repeats` passes (the least disturbed one when other jobs share the CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cpuwise.optimize.io import Feed, SequenceSpec, run_batched, take, trim


@dataclass(frozen=True)
class IOConfig:
    """Input tricks used when running a model."""

    dynamic_padding: bool = False
    bucket_multiple: int = 8
    batch_size: int = 32

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    p50_ms: float
    p90_ms: float
    throughput: float  # samples / s at batch `batch_size`
    batch_size: int
    rss_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def single_rows(feed: Feed, n: int, spec: SequenceSpec | None, io: IOConfig) -> list[Feed]:
    """Up to `n` one-row feeds spread over the data, trimmed when dynamic padding is on."""
    rows = len(next(iter(feed.values())))
    picks = np.unique(np.linspace(0, rows - 1, num=min(n, rows)).astype(int))
    out = [take(feed, slice(i, i + 1)) for i in picks]
    if spec is not None and io.dynamic_padding:
        out = [trim(f, spec, io.bucket_multiple) for f in out]
    return out


def run_all(
    run: Callable[[Feed], np.ndarray], feed: Feed, spec: SequenceSpec | None, io: IOConfig
) -> np.ndarray:
    """Outputs for every row of `feed`, using the I/O tricks in `io`."""
    return run_batched(run, feed, io.batch_size, spec if io.dynamic_padding else None, io.bucket_multiple)


def measure(
    run: Callable[[Feed], np.ndarray],
    feed: Feed,
    *,
    spec: SequenceSpec | None = None,
    io: IOConfig | None = None,
    latency_requests: int = 50,
    warmup: int = 5,
    repeats: int = 3,
    time_budget_s: float = 20.0,
) -> BenchResult:
    """Latency percentiles over single requests and best-pass throughput over `repeats` passes of `feed`."""
    io = io or IOConfig()
    singles = single_rows(feed, latency_requests, spec, io)
    for f in singles[:warmup]:
        run(f)
    times: list[float] = []
    deadline = time.perf_counter() + time_budget_s / 2
    for f in singles:
        t0 = time.perf_counter()
        run(f)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > deadline and len(times) >= 5:
            break
    rows = len(next(iter(feed.values())))
    run_all(run, take(feed, slice(0, min(rows, io.batch_size))), spec, io)  # warm the batch shapes
    passes: list[float] = []
    deadline = time.perf_counter() + time_budget_s / 2
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        run_all(run, feed, spec, io)
        passes.append(time.perf_counter() - t0)
        if time.perf_counter() > deadline:
            break
    ms = np.array(times) * 1000
    return BenchResult(
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        throughput=float(rows / min(passes)),  # best pass: the least disturbed on a shared CPU
        batch_size=io.batch_size,
        rss_bytes=rss_bytes(),
        extra={"latency_requests": len(times), "throughput_passes": len(passes)},
    )


def ort_runner(session: Any) -> Callable[[Feed], np.ndarray]:
    """A runner for an ORT session that returns its first output; extra feed keys are ignored."""
    names = [i.name for i in session.get_inputs()]
    out = session.get_outputs()[0].name

    def run(feed: Feed) -> np.ndarray:
        return np.asarray(session.run([out], {n: feed[n] for n in names})[0])

    return run


def torch_runner(
    model: Any, names: list[str], output_fn: Callable[[Any], Any] | None = None
) -> Callable[[Feed], np.ndarray]:
    """A runner for a torch module called as `model(*[feed[n] for n in names])` (eager, no grad)."""
    from cpuwise._optional import require

    torch = require("torch")

    def run(feed: Feed) -> np.ndarray:
        with torch.inference_mode():
            y = model(*[torch.from_numpy(np.ascontiguousarray(feed[n])) for n in names])
            if output_fn is not None:
                y = output_fn(y)
            if isinstance(y, (tuple, list)):
                y = y[0]
            return np.asarray(y.float().numpy())

    return run


def thread_sweep(
    model_path: Any,
    feed: Feed,
    threads: list[int],
    *,
    spec: SequenceSpec | None = None,
    io: IOConfig | None = None,
    latency_requests: int = 30,
    repeats: int = 2,
) -> list[tuple[int, BenchResult]]:
    """Measure the ONNX model at each intra-op thread count (spinning on; graph level all)."""
    from cpuwise.optimize.session import SessionSettings, make_session

    out = []
    for t in threads:
        sess = make_session(model_path, SessionSettings(intra_op_threads=t))
        out.append(
            (
                t,
                measure(
                    ort_runner(sess),
                    feed,
                    spec=spec,
                    io=io,
                    latency_requests=latency_requests,
                    repeats=repeats,
                ),
            )
        )
    return out
