"""Inference runtimes by name: the engines candidates are measured on and artifacts are served with.

`base.Runtime` is the contract; ONNX Runtime and OpenVINO implement it, one module each. A third runtime
is one module here that satisfies `Runtime`, plus its line in `RUNTIMES`. The search measures every
runtime whose packages are installed (`available()`), each as its own branch.
"""

from __future__ import annotations

from cpuwise.errors import ConfigError
from cpuwise.optimize.runtimes import onnxruntime, openvino
from cpuwise.optimize.runtimes.base import Recipe, Runner, Runtime, Settings

__all__ = ["DEFAULT", "RUNTIMES", "Recipe", "Runner", "Runtime", "Settings", "get", "installed"]

RUNTIMES: dict[str, Runtime] = {
    "onnxruntime": onnxruntime.OnnxRuntime(),
    "openvino": openvino.OpenVino(),
}
DEFAULT = "onnxruntime"


def get(name: str = DEFAULT) -> Runtime:
    """The runtime called `name`; ConfigError naming the known ones otherwise."""
    if name not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {sorted(RUNTIMES)}, got {name!r}")
    return RUNTIMES[name]


def installed(names: list[str] | None = None) -> list[Runtime]:
    """The runtimes (all, or those named) whose packages are installed, in `RUNTIMES` order."""
    wanted = list(RUNTIMES) if names is None else names
    for n in wanted:
        get(n)
    return [RUNTIMES[n] for n in RUNTIMES if n in wanted and RUNTIMES[n].available()]
