"""The public surface of cpuwise.optimize: an explicit `__all__`, every name importable from the package."""

from __future__ import annotations

import cpuwise.optimize as co


def test_all_lists_the_public_names_and_each_resolves() -> None:
    assert sorted(co.__all__) == sorted(
        ["optimize", "load", "Result", "Predictor", "PredictionCache", "MicroBatcher", "Budget"]
    )
    for name in co.__all__:
        assert getattr(co, name).__name__ == name
