"""cpuwise optimize: the fastest CPU version of a model within an accuracy budget.

    import cpuwise.optimize as co
    result = co.optimize(model, example_inputs, eval_inputs=..., task="embedding", max_drop=0.01)
    predictor = co.load(result.out_dir)
    y = predictor.predict(x)

Heavy libraries (torch, onnxruntime) are imported only when these functions run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["optimize", "load", "Result", "Predictor", "PredictionCache", "MicroBatcher", "Budget"]

if TYPE_CHECKING:  # pragma: no cover
    from cpuwise.optimize.api import Result, optimize
    from cpuwise.optimize.deploy.batcher import MicroBatcher
    from cpuwise.optimize.deploy.cache import PredictionCache
    from cpuwise.optimize.deploy.predictor import Predictor, load
    from cpuwise.optimize.search.choose import Budget

_WHERE = {
    "optimize": "cpuwise.optimize.api",
    "Result": "cpuwise.optimize.api",
    "load": "cpuwise.optimize.deploy.predictor",
    "Predictor": "cpuwise.optimize.deploy.predictor",
    "PredictionCache": "cpuwise.optimize.deploy.cache",
    "MicroBatcher": "cpuwise.optimize.deploy.batcher",
    "Budget": "cpuwise.optimize.search.choose",
}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use: `import cpuwise.optimize` loads none of the search."""
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'cpuwise.optimize' has no attribute {name!r}")
