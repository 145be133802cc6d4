"""Import heavy optional dependencies where they are used, with an error that names the extra."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from cpuwise.errors import MissingExtraError

# module name -> (pip package, cpuwise extra)
_PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("torch==2.13.0", "torch"),
    "torchvision": ("torchvision", "gpu"),
    "pynvml": ("nvidia-ml-py", "gpu"),
    "cv2": ("opencv-python-headless", "image"),
    "simplejpeg": ("simplejpeg", "image"),
    "pandas": ("pandas", "tabular"),
    "pyarrow": ("pyarrow", "tabular"),
    "onnx": ("onnx", "optimize"),
    "onnxruntime": ("onnxruntime", "optimize"),
    "torch_pruning": ("torch-pruning", "optimize"),
    "scipy": ("scipy", "optimize"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "sentence_transformers": ("sentence-transformers", "models"),
    "sklearn": ("scikit-learn", "models"),
    "keras": ("keras", "keras"),
    "jax": ("jax", "jax"),
    "ray": ("ray[data]", "ray"),
}


def require(module: str, *, extra: str | None = None, purpose: str | None = None) -> ModuleType:
    """Import `module` or raise MissingExtraError naming what to install.

    Example:
        ort = require("onnxruntime", extra="optimize", purpose="benchmarking ONNX models")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package, default_extra = _PACKAGES.get(module.split(".")[0], (module, extra or ""))
        extra = extra or default_extra
        why = f" for {purpose}" if purpose else ""
        hint = f"`pip install 'cpuwise[{extra}]'`" if extra else f"`pip install {package}`"
        raise MissingExtraError(
            f"cpuwise needs the '{module}' module{why}, but it is not installed ({exc}). "
            f"Install it with {hint} (or `pip install {package}`)."
        ) from exc


def available(module: str) -> bool:
    """True if `module` can be imported (without importing it when it isn't loaded yet)."""
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
