"""Inference runtimes by name: the engines candidates are measured on and artifacts are served with.

`base.Runtime` is the contract; ONNX Runtime is the one runtime today. A second one (OpenVINO, issue 12)
is one module here that satisfies `Runtime`, plus its line in `RUNTIMES`.
"""

from __future__ import annotations

from cpuwise.errors import ConfigError
from cpuwise.optimize.runtimes import onnxruntime
from cpuwise.optimize.runtimes.base import Recipe, Runner, Runtime, Settings

__all__ = ["DEFAULT", "RUNTIMES", "Recipe", "Runner", "Runtime", "Settings", "get"]

RUNTIMES: dict[str, Runtime] = {
    "onnxruntime": onnxruntime.OnnxRuntime(),
}
DEFAULT = "onnxruntime"


def get(name: str = DEFAULT) -> Runtime:
    """The runtime called `name`; ConfigError naming the known ones otherwise."""
    if name not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {sorted(RUNTIMES)}, got {name!r}")
    return RUNTIMES[name]
