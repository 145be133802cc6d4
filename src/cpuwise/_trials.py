"""What a `cpuwise doctor --try-fixes` trial changes in the job, as the doctor and the job both read it.

The doctor decides the trials (`cpuwise.diagnose.trials`, pure) and runs each as a fresh process tree
(`cpuwise.monitor.trials`); the job side (`cpuwise.monitor.instrument.trial`, loaded by every Python
process of the job) reads the `Overrides` from the environment and applies them without any change to
the user's code: DataLoader arguments, thread caps, cpuwise.data in place of a DataLoader, replaying the
first real batches (the upper bound), and stopping cleanly after N measured steps.

    ov = Overrides(num_workers=2, persistent_workers=True, steps=200)
    env = {TRIAL_ENV: "1", OVERRIDES_ENV: ov.to_json()}

Standard library only: the job's interpreters load it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

TRIAL_ENV = "CPUWISE_TRIAL"  # "1" in every process of a trial: scripts check it to skip side effects
OVERRIDES_ENV = "CPUWISE_TRIAL_OVERRIDES"  # the Overrides as JSON
RESULT_KIND = "trial"  # the channel record a trial's main process sends with its measurement

# How a trial ended (the doctor's runner decides, the report shows it).
OK, CRASHED, TIMED_OUT, NO_STEPS, NOT_APPLIED, INTERRUPTED = (
    "ok", "crashed", "timed out", "no steps", "not applied", "interrupted")

# The fields that change the job (the rest say how to measure it).
CHANGES = ("num_workers", "persistent_workers", "prefetch_factor", "pin_memory", "batch_size",
           "threads_main", "threads_worker", "cpuwise_data", "replay")


@dataclass(frozen=True)
class Overrides:
    """One trial's changes (None: as the job has it) and how it is measured.

    Args:
        num_workers, persistent_workers, prefetch_factor, pin_memory, batch_size: DataLoader arguments
            that replace the job's own in every `torch.utils.data.DataLoader(...)` it makes.
        threads_main, threads_worker: thread caps (torch, OpenMP/BLAS through threadpoolctl) in the main
            process and in each data worker; the job's own `torch.set_num_threads` calls are capped too.
        cpuwise_data: a plain map-style Dataset's DataLoader becomes cpuwise.data's drop-in.
        replay: the upper bound: the first `replay` batches each loader delivers are kept and replayed
            cyclically, the loader no longer runs.
        steps: measured steps after the warm-up; the job is stopped cleanly after them (0: never).
        warmup: deliveries not measured (worker start, first-touch costs), the same in every trial.
        max_seconds: stop after this many seconds of measured steps (the first, sizing run); 0: never.
    """

    num_workers: int | None = None
    persistent_workers: bool | None = None
    prefetch_factor: int | None = None
    pin_memory: bool | None = None
    batch_size: int | None = None
    threads_main: int | None = None
    threads_worker: int | None = None
    cpuwise_data: bool = False
    replay: int = 0
    steps: int = 0
    warmup: int = 5
    max_seconds: float = 0.0

    def changes(self) -> dict[str, Any]:
        """The fields that change the job and are set."""
        return {k: v for k, v in asdict(self).items() if k in CHANGES and v not in (None, False, 0)}

    def merged(self, other: Overrides) -> Overrides:
        """These changes with `other`'s set fields on top."""
        return replace(self, **other.changes())

    def conflicts(self, other: Overrides) -> bool:
        """Both set one field to different values (they cannot be combined)."""
        mine = self.changes()
        return any(k in mine and mine[k] != v for k, v in other.changes().items())

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Overrides:
        """The Overrides `to_json` wrote; unknown keys and values of the wrong type are dropped (a job
        must never fail because of what its trial asked)."""
        try:
            data = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        kept: dict[str, Any] = {}
        for f in fields(cls):
            v = data.get(f.name)
            if v is None:
                continue
            default = f.default
            if isinstance(default, bool) or f.name in ("persistent_workers", "pin_memory"):
                if isinstance(v, bool):
                    kept[f.name] = v
            elif isinstance(default, float):
                if isinstance(v, int | float) and not isinstance(v, bool):
                    kept[f.name] = float(v)
            elif isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                kept[f.name] = v
        return cls(**kept)


def describe(changes: dict[str, Any]) -> str:
    """A change as the report's table names it: `num_workers=2, persistent_workers=True`."""
    if not changes:
        return "as is"
    names = {"threads_main": "threads in main", "threads_worker": "threads per worker",
             "cpuwise_data": "cpuwise.data DataLoader", "replay": "upper bound"}
    parts = []
    for k, v in changes.items():
        if k in ("cpuwise_data", "replay"):
            parts.append(names[k])
        elif k in names:
            parts.append(f"{names[k]}={v}")
        else:
            parts.append(f"{k}={v}")
    return ", ".join(parts)
