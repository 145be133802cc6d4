"""The pipeline stages, one module each: its Spec (what a Dataset method records), its Stage (what
runs), and its stats entry. `_base.py` holds the contract both follow.

A Spec subclass registers its `kind` when its module loads; `registered()` loads every module of
this package first, so a new stage file is registered even before anything imports it, and the
stage contract test (tests/data/stages/test_stage_contract.py) runs on it.
"""

from __future__ import annotations

import importlib
import pkgutil

from cpuwise.data.stages._base import REGISTRY, Spec


def registered() -> dict[str, type[Spec]]:
    """Every stage kind and its Spec class, from every module in this package."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return dict(REGISTRY)
