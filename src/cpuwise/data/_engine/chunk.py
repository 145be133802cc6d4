"""Run a chunk of samples through a group of fused map functions (in a worker or a thread).

Each function gets `rng = sample_rng(seed, epoch, index)` when it needs one, where `index` is the
sample's position in the epoch at the input of the map group: the random numbers, and so the
output, do not depend on which worker runs the sample or on how samples are chunked.
"""

from __future__ import annotations

import pickle
import time
import traceback
from collections.abc import Mapping
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


class Sealed:
    """One output pickled on its own, so the receiving process can rebuild each output separately."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return (Sealed, (self.data,))


SEND_FIX = ("Fix: return numpy arrays and plain Python values (numbers, str, bytes, tuples, lists, "
            "dicts), or use backend='thread'")


@dataclass(frozen=True)
class ResultPolicy:
    """What becomes of a sample whose result cannot travel: the group's last function's on_error."""

    stage: int  # the position of that function in the group
    skip: bool

    @staticmethod
    def of(fns: list[MapFn]) -> ResultPolicy:
        return ResultPolicy(len(fns) - 1, fns[-1].on_error == "skip")

    def marker(self, item: Any, why: str) -> Skipped | Failed:
        name = sample_name(item)
        return Skipped(name, self.stage, why) if self.skip else Failed(name, self.stage, why, "")


def sendable(policy: ResultPolicy, items: list[Any], outputs: list[Any], seal: bool = False) -> list[Any]:
    """`outputs` with each one that cannot be pickled replaced by a marker naming its sample.

    Called when the whole chunk failed to pickle (in a worker process), so one bad result costs its
    sample only. With `seal`, every good output is pickled on its own (`Sealed`): for a chunk whose
    results pickled but could not be rebuilt in the pipeline's process (see `unseal`).
    """
    out: list[Any] = []
    for item, o in zip(items, outputs, strict=True):
        if isinstance(o, (Skipped, Failed)):
            out.append(o)
            continue
        try:
            data = pickle.dumps(o, protocol=5)
        except Exception as exc:  # any __reduce__ may raise anything
            out.append(policy.marker(item, f"the map result could not be sent back from the worker process "
                                           f"({type(exc).__name__}: {exc}). {SEND_FIX}"))
            continue
        out.append(Sealed(data) if seal else o)
    return out


def unseal(policy: ResultPolicy, items: list[Any], outputs: list[Any]) -> list[Any]:
    """Rebuild each Sealed output; one that cannot be rebuilt here becomes a marker naming its sample."""
    out: list[Any] = []
    for item, o in zip(items, outputs, strict=True):
        if not isinstance(o, Sealed):
            out.append(o)
            continue
        try:
            out.append(pickle.loads(o.data))
        except Exception as exc:
            out.append(policy.marker(item, f"the map result could not be rebuilt in the pipeline's process "
                                           f"({type(exc).__name__}: {exc}). {SEND_FIX}"))
    return out


def run_chunk(fns: list[MapFn], items: list[Any], start: int, epoch: int,
              crashed: Mapping[int, str] | None = None,
              progress: Any = None) -> tuple[list[Any], list[float]]:
    """Apply the group to items[k] (epoch index start + k). Returns (outputs, seconds per fn).

    `crashed` maps chunk positions whose sample killed or hung a worker twice to the reason: with
    on_error="skip" they are skipped without being run again. `progress` (a shared int array)
    records the position being run, so the pool can name the sample that killed or hung a worker.
    """
    crashed = crashed or {}
    out: list[Any] = []
    times = [0.0] * len(fns)
    for k, item in enumerate(items):
        if progress is not None:
            progress[1] = k
        if k in crashed:
            out.append(Skipped(sample_name(item), 0, crashed[k]))
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
