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
import psutil

from cpuwise._optional import require
from cpuwise.optimize.io import Feed, IOConfig, SequenceSpec, run_all, take, trim


@dataclass
class BenchResult:
    """What `measure` found: latency percentiles at batch 1, throughput at `batch_size`, memory."""

    p50_ms: float
    p90_ms: float
    throughput: float  # samples / s at batch `batch_size`
    batch_size: int
    rss_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss_bytes() -> int:
    """This process's resident memory now."""
    return int(psutil.Process().memory_info().rss)


def single_rows(feed: Feed, n: int, spec: SequenceSpec | None, io: IOConfig) -> list[Feed]:
    """Up to `n` one-row feeds spread over the data, trimmed when dynamic padding is on."""
    rows = len(next(iter(feed.values())))
    picks = np.unique(np.linspace(0, rows - 1, num=min(n, rows)).astype(int))
    out = [take(feed, slice(i, i + 1)) for i in picks]
    if spec is not None and io.dynamic_padding:
        out = [trim(f, spec, io.bucket_multiple) for f in out]
    return out


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


def torch_runner(
    model: Any, names: list[str], output_fn: Callable[[Any], Any] | None = None
) -> Callable[[Feed], np.ndarray]:
    """A runner for a torch module called as `model(*[feed[n] for n in names])` (eager, no grad)."""
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
