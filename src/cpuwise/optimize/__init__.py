"""cpuwise optimize: the fastest CPU version of a model within an accuracy budget.

    import cpuwise.optimize as co
    result = co.optimize(model, example_inputs, eval_inputs=..., task="embedding", max_drop=0.01)
    predictor = co.load(result.out_dir)
    y = predictor.predict(x)

Heavy libraries (torch, onnxruntime) are imported only when these functions run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["optimize", "load", "Result", "Predictor", "PredictionCache", "MicroBatcher", "Budget"]

if TYPE_CHECKING:  # pragma: no cover
    from cpuwise.optimize.api import Result, optimize
    from cpuwise.optimize.cache import PredictionCache
    from cpuwise.optimize.io import MicroBatcher
    from cpuwise.optimize.runtime import Predictor, load
    from cpuwise.optimize.search import Budget

_WHERE = {
    "optimize": "cpuwise.optimize.api",
    "Result": "cpuwise.optimize.api",
    "load": "cpuwise.optimize.runtime",
    "Predictor": "cpuwise.optimize.runtime",
    "PredictionCache": "cpuwise.optimize.cache",
    "MicroBatcher": "cpuwise.optimize.io",
    "Budget": "cpuwise.optimize.search",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'cpuwise.optimize' has no attribute {name!r}")
