"""Run a chunk of samples through a group of fused map functions (in a worker or a thread).

Each function gets `rng = sample_rng(seed, epoch, index)` when it needs one, where `index` is the
sample's position in the epoch at the input of the map group: the random numbers, and so the
output, do not depend on which worker runs the sample or on how samples are chunked.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

from cpuwise.data._naming import sample_name
from cpuwise.data.transform import sample_rng


@dataclass(frozen=True)
class MapFn:
    """One map() call inside a fused group."""

    fn: Any
    name: str
    needs_rng: bool
    on_error: str  # "raise" | "skip"
    seed: int


class Skipped:
    """Marker in a chunk result: the sample failed and on_error="skip" dropped it."""

    __slots__ = ("name", "stage", "why")

    def __init__(self, name: str, stage: int, why: str) -> None:
        self.name, self.stage, self.why = name, stage, why

    def __reduce__(self) -> tuple[Any, ...]:
        return (Skipped, (self.name, self.stage, self.why))


class Failed:
    """Marker in a chunk result: the sample failed and on_error="raise" raises when it is reached."""

    __slots__ = ("name", "stage", "error", "tb", "exc")

    def __init__(self, name: str, stage: int, error: str, tb: str, exc: BaseException | None = None) -> None:
        self.name, self.stage, self.error, self.tb, self.exc = name, stage, error, tb, exc

    def __reduce__(self) -> tuple[Any, ...]:
        return (Failed, (self.name, self.stage, self.error, self.tb))  # exc objects may not pickle


def run_chunk(fns: list[MapFn], items: list[Any], start: int, epoch: int,
              crashed: frozenset[int] = frozenset(),
              progress: Any = None) -> tuple[list[Any], list[float]]:
    """Apply the group to items[k] (epoch index start + k). Returns (outputs, seconds per fn).

    `crashed` holds chunk positions whose sample killed a worker before: with on_error="skip" they
    are skipped without being run again. `progress` (a shared int array) records the position being
    run, so the parent can name the sample that killed a worker.
    """
    out: list[Any] = []
    times = [0.0] * len(fns)
    for k, item in enumerate(items):
        if progress is not None:
            progress[1] = k
        if k in crashed:
            out.append(Skipped(sample_name(item), 0, "it killed its worker process twice"))
            continue
        x = item
        for j, f in enumerate(fns):
            t0 = time.perf_counter()
            try:
                x = f.fn(x, sample_rng(f.seed, epoch, start + k)) if f.needs_rng else f.fn(x)
            except Exception as exc:
                times[j] += time.perf_counter() - t0
                if f.on_error == "skip":
                    x = Skipped(sample_name(item), j, f"{type(exc).__name__}: {exc}")
                    break
                x = Failed(sample_name(item), j, f"{type(exc).__name__}: {exc}", traceback.format_exc(), exc)
                break
            times[j] += time.perf_counter() - t0
        out.append(x)
    return out, times
