"""Checks on what an artifact reads back: typed fields of cpuwise.json, and model files kept in their folder.

cpuwise.json may have been edited by hand (or by someone else): every field is checked for its type and
range before use, and every file it names must be a plain file inside the artifact folder, with no
symlink or ONNX external-data reference that leads out of it. Each failure is a ConfigError naming the
field, what was expected, what was found and the fix. Nothing here unpickles anything.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from cpuwise._optional import require
from cpuwise.errors import ConfigError

FIX = "re-create the artifact with `cpuwise optimize` (or restore the cpuwise.json it wrote)"
_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
          dict: "an object", type(None): "null"}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def bad(field: str, expected: str, value: Any) -> ConfigError:
    """The error for a field of cpuwise.json that is not what it should be."""
    return ConfigError(
        f"cpuwise.json: '{field}': expected {expected}, found {_shown(value)} ({type(value).__name__}); "
        f"fix: {FIX}"
    )


def typed(value: Any, types: tuple[type, ...], field: str) -> Any:
    """`value` when it is one of `types` (bool is not an int here, an int is a float), else ConfigError."""
    ok = any(
        (isinstance(value, t) and not (t in (int, float) and isinstance(value, bool)))
        or (t is float and isinstance(value, int) and not isinstance(value, bool))
        for t in types
    )
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise bad(field, " or ".join(_NAMES.get(t, t.__name__) for t in types), value)
    return value


def get(d: dict[str, Any], key: str, types: tuple[type, ...], where: str = "", default: Any = ...) -> Any:
    """`d[key]` checked against `types`; missing: `default` when given, else a ConfigError naming it."""
    field = f"{where}{key}"
    if key not in d:
        if default is ...:
            raise bad(field, "present", "<missing>")
        return default
    return typed(d[key], types, field)


def positive(value: int, field: str) -> int:
    """`value` when it is >= 1."""
    if value < 1:
        raise bad(field, "an integer >= 1", value)
    return value


def frozen_from_dict(cls: Any, d: Any, field: str) -> Any:
    """A frozen dataclass from a JSON object: each known key checked against its default's type.

    Unknown keys are ignored (an older reader of a newer file); missing keys keep their defaults.
    """
    typed(d, (dict,), field)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        want: tuple[type, ...] = (type(default),) if default is not None else (str, int, float, bool)
        kwargs[f.name] = typed(d[f.name], want, f"{field}.{f.name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cpuwise.json: '{field}' is not valid ({exc}); fix: {FIX}") from exc


def inside(folder: Path, name: Any, field: str) -> Path:
    """The file `name` names in `folder`: a plain file name whose real path stays inside `folder`."""
    typed(name, (str,), field)
    plain = name and "/" not in name and "\\" not in name and name not in (".", "..")
    if not plain:
        raise ConfigError(
            f"cpuwise.json: '{field}' must name a file inside the artifact folder: expected a plain file "
            f"name like 'model.onnx', found {_shown(name)}; fix: {FIX}"
        )
    return confined(folder, folder / name, f"'{field}' ({name})")


def confined(folder: Path, path: Path, what: str) -> Path:
    """`path` when it is a regular file whose real path (symlinks followed) is inside `folder`."""
    real, root = path.resolve(), folder.resolve()
    if not real.is_relative_to(root):
        raise ConfigError(
            f"{what} resolves to {real}, outside the artifact folder {root}: an artifact serves only its own "
            f"files; fix: copy the file into the folder instead of linking to it, or {FIX}"
        )
    if not real.is_file():
        raise ConfigError(f"{what}: expected a regular file at {path}, found {_kind(path)}; fix: {FIX}")
    return path


def _kind(path: Path) -> str:
    if not path.exists():
        return "nothing"
    return "a folder" if path.is_dir() else "a special file (FIFO, device or socket)"


def onnx_data_confined(folder: Path, model: Path) -> None:
    """Every external-data file an ONNX model names must be inside `folder` (ORT and OpenVINO check this
    too, but with their own raw errors); the weights themselves are not read."""
    onnx = require("onnx", extra="optimize", purpose="reading an ONNX model")
    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - a broken model file is one clear error
        raise ConfigError(f"{model.name} is not a readable ONNX model ({exc}); fix: {FIX}") from exc
    for t in proto.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                confined(folder, model.parent / entry.value,
                         f"{model.name}'s external data '{entry.value}' (initializer {t.name})")
