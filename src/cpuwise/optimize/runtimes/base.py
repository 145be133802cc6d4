"""The contract of an inference runtime: what the search measures candidates on and artifacts run on.

A runtime builds a *session* for a model file with its own settings (threads, graph optimisation, ...),
turns a session into a *runner* (`Callable[[Feed], np.ndarray]`, what `bench.measure` times), describes a
model's inputs, and quantizes to INT8 with the recipes that suit this CPU. Settings and recipes are the
runtime's own frozen records; the search only stores them, prints their `label()` / `name` and saves
their `to_dict()` in the artifact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cpuwise.optimize.io import Feed

Runner = Callable[[Feed], np.ndarray]  # may also have `map(feeds) -> list[np.ndarray]` (see io.run_many)


class Settings(Protocol):
    """How a runtime builds a session: a frozen record that round-trips through `to_dict()`."""

    def to_dict(self) -> dict[str, Any]: ...

    def label(self) -> str: ...


class Recipe(Protocol):
    """One way to quantize a model to INT8; `keep_fp32` names a weight group left in float ("": none)."""

    @property
    def name(self) -> str: ...

    @property
    def mode(self) -> str: ...  # "dynamic" | "static" (static needs calibration feeds)

    @property
    def note(self) -> str: ...

    @property
    def keep_fp32(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


class Runtime(Protocol):
    """An inference engine. Parameters typed `Any` take the runtime's own settings / recipe records."""

    name: str  # the key in `runtimes.RUNTIMES`
    title: str  # how reports name it ("ONNX Runtime")
    model_suffix: str  # the file type of the models it writes (its INT8 models): ".onnx", ".xml"

    def available(self) -> bool:
        """True when its packages are installed (the search leaves it out otherwise, with a note)."""
        ...

    def lossless(self, settings: Any) -> bool:
        """True when `settings` compute in full FP32 (False: e.g. OpenVINO's bf16 precision)."""
        ...

    def aware_recipe(self) -> Recipe | None:
        """The runtime's own accuracy-aware INT8 recipe (ranks layers by their effect), or None."""
        ...

    def default_settings(self) -> Settings:
        """The settings a user gets without tuning (the speed-up baseline)."""
        ...

    def reference_settings(self) -> Settings:
        """Settings for the FP32 reference outputs of a model given as a file: few graph rewrites."""
        ...

    def settings_from_dict(self, d: dict[str, Any]) -> Settings: ...

    def settings_grid(self, cores: int, *, quick: bool = False) -> Sequence[Settings]:
        """The settings worth measuring on `cores` usable cores (pure)."""
        ...

    def session(self, model: str | Path | bytes, settings: Any = None) -> Any:
        """A loaded model ready to run with `settings` (None: the defaults)."""
        ...

    def runner(self, session: Any) -> Runner:
        """Run `session` on a feed and return its first output."""
        ...

    def model_io(self, model: str | Path) -> tuple[list[dict[str, Any]], str]:
        """Input descriptions ({name, dtype, shape with None for dynamic dims}) and the first output name."""
        ...

    def int8_recipes(self, *, vnni: bool, have_calibration: bool) -> Sequence[Recipe]:
        """The INT8 recipes worth measuring on a CPU with/without VNNI (pure)."""
        ...

    def default_int8_recipe(self, *, vnni: bool) -> Recipe:
        """The recipe derived models get when no recipe was measured within budget on the base model."""
        ...

    def quantize(self, src: str | Path, dst: str | Path, recipe: Any, calibration: list[Feed] | None,
                 **aware: Any) -> str:
        """Write the INT8 model for `recipe` to `dst`; returns a note ("" or why the recipe changed).

        An accuracy-aware recipe also gets `validate` (compiled model -> budget slack, >= 0 within budget)
        and `validation` (feeds)."""
        ...

    def weight_groups(self, model: str | Path) -> dict[str, list[str]]:
        """Weighted nodes grouped by role (weight shape): the unit kept in float when INT8 saturates."""
        ...

    def keep_fp32(self, recipe: Any, group: str, size: int) -> Recipe:
        """`recipe` with the `size` nodes of weight group `group` left in float."""
        ...
