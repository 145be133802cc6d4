"""Every optimize pass, one module each, registered by name in the order the search runs them.

The contract is `base.Pass` (torch-model passes share `torchpass.TorchPass`); `cpuwise.testing.passes`
checks it on every registered pass. A pass lives in the module named after it (`--passes fp16` is
`passes/fp16.py`, a `Pass` subclass with `name = "fp16"`); registering it is adding that name to
`REGISTERED`, at the place in the order where it should run.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence

from cpuwise.errors import ConfigError
from cpuwise.optimize.passes.base import NEEDS, Basis, Outcome, Pass, Plan
from cpuwise.optimize.passes.torchpass import PassContext, PassResult, TorchPass

__all__ = [
    "NEEDS", "REGISTERED", "Basis", "Outcome", "Pass", "PassContext", "PassResult", "Plan", "TorchPass",
    "pass_class", "select",
]

# The search runs the passes in this order, each building on the best candidate so far.
REGISTERED = (
    "io",  # first: padding to the real length makes every later measurement cheaper
    "session",
    "fuse",
    "int8",  # on the fused graph: ORT's quantized attention is where fusion pays
    "prune",  # the torch passes last: their models reuse the settings, fusion and INT8 recipe found above
    "lowrank",
    "distill",
)


def _load(name: str) -> type[Pass]:
    """The Pass subclass called `name` in the module `passes/<name>.py`."""
    module = importlib.import_module(f"{__name__}.{name}")
    found = [
        v for v in vars(module).values()
        if inspect.isclass(v) and issubclass(v, Pass) and not inspect.isabstract(v) and v.name == name
    ]
    if len(found) != 1:
        raise TypeError(f"{module.__file__} must define one Pass subclass with name {name!r}, found {found}")
    return found[0]


_BY_NAME: dict[str, type[Pass]] = {name: _load(name) for name in REGISTERED}


def pass_class(name: str) -> type[Pass]:
    """The registered pass called `name`; ConfigError naming the known passes otherwise."""
    if name not in _BY_NAME:
        raise ConfigError(
            f"unknown pass {name!r}: expected one of {', '.join(REGISTERED)} (or passes='auto' for all)"
        )
    return _BY_NAME[name]


def select(passes: Sequence[str | Pass] | str) -> list[Pass]:
    """The passes to run, in run order: "auto" (all), names (a list or "a,b"), and/or Pass instances.

    Named passes run in the registered order (a name given twice runs once); an instance of a registered
    pass (e.g. `PrunePass(ratio=0.5)`) runs in that pass's place, an instance of any other Pass after
    every registered one, in the order given. Raises ConfigError for an unknown name.
    """
    if isinstance(passes, str):
        items: list[str | Pass] = (
            list(REGISTERED) if passes == "auto" else [p.strip() for p in passes.split(",") if p.strip()]
        )
    else:
        items = list(passes)
    chosen: list[Pass] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Pass):
            chosen.append(item)
        elif isinstance(item, str):
            cls = pass_class(item)
            if item not in seen:
                chosen.append(cls())
            seen.add(item)
        else:
            raise ConfigError(
                f"passes must hold pass names or Pass instances, got {type(item).__name__}: {item!r}"
            )
    order = {name: i for i, name in enumerate(REGISTERED)}
    return sorted(chosen, key=lambda p: order.get(p.name, len(order)))
