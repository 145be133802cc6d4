"""cpuwise: find and fix the CPU side of deep learning.

- `cpuwise doctor -- python train.py` names the bottleneck of a running job, with evidence and a fix.
- `cpuwise.data` is an input pipeline that autotunes its parallelism within a CPU and RAM budget.
- `cpuwise optimize` finds the fastest CPU version of a model within an accuracy budget.

Importing cpuwise is cheap: torch, onnxruntime and other heavy libraries load only where used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cpuwise.errors import (
    BudgetError,
    CommandNotFoundError,
    ConfigError,
    CpuwiseError,
    ExportError,
    MissingExtraError,
    OptimizeError,
    PipelineError,
    RecordingError,
    SampleError,
    StateError,
    WorkerError,
)

__version__ = "0.1.0"

__all__ = [
    "BudgetError",
    "CommandNotFoundError",
    "ConfigError",
    "CpuwiseError",
    "ExportError",
    "MissingExtraError",
    "OptimizeError",
    "PipelineError",
    "RecordingError",
    "SampleError",
    "StateError",
    "WorkerError",
    "__version__",
    "watch",
]

if TYPE_CHECKING:  # pragma: no cover
    from cpuwise._watch import watch


def __getattr__(name: str) -> Any:
    if name == "watch":
        from cpuwise._watch import watch  # lazy: `import cpuwise` stays cheap

        return watch
    raise AttributeError(f"module 'cpuwise' has no attribute {name!r}")
