"""The exceptions cpuwise raises.

Every message says what was expected, what was found, and how to fix it.

    CpuwiseError                 base of everything below; catch this to catch all of cpuwise
    ├── ConfigError (ValueError) a bad argument or setting (batch 0, a budget larger than the machine)
    ├── MissingExtraError (ImportError)
    │                            an optional dependency is not installed; names the extra to install
    ├── CommandNotFoundError     `cpuwise doctor -- CMD`: CMD is not on PATH / not a file
    ├── RecordingError           a recording file could not be read (wrong format or version)
    ├── PipelineError            cpuwise.data: a stage failed
    │   ├── SampleError          one sample failed in a stage; names the sample and the stage
    │   ├── WorkerError          a worker process died or hung and could not be recovered
    │   └── StateError           a state_dict does not match the pipeline it is loaded into
    └── OptimizeError            cpuwise optimize
        ├── ExportError          ONNX export failed; names the op and the module path
        └── BudgetError          no candidate satisfies the accuracy budget
"""

from __future__ import annotations


class CpuwiseError(Exception):
    """Base class of every cpuwise error."""


class ConfigError(CpuwiseError, ValueError):
    """A bad argument or setting."""


class MissingExtraError(CpuwiseError, ImportError):
    """An optional dependency is not installed."""


class CommandNotFoundError(CpuwiseError):
    """The command given to `cpuwise doctor` cannot be found."""


class RecordingError(CpuwiseError):
    """A recording could not be read."""


class PipelineError(CpuwiseError):
    """A cpuwise.data pipeline failed."""


class SampleError(PipelineError):
    """One sample failed in one stage."""

    def __init__(self, message: str, *, sample: object = None, stage: str | None = None) -> None:
        super().__init__(message)
        self.sample = sample
        self.stage = stage


class WorkerError(PipelineError):
    """A worker died or hung and could not be recovered."""


class StateError(PipelineError):
    """A state_dict does not match the pipeline."""


class OptimizeError(CpuwiseError):
    """cpuwise optimize failed."""


class ExportError(OptimizeError):
    """ONNX export failed."""


class BudgetError(OptimizeError):
    """No candidate satisfies the accuracy budget."""
