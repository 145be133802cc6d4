"""Inputs as feeds: what a caller passes (tensors or arrays), an .npz file, or synthetic rows.

Synthetic rows are fine for timing and for agreement with FP32, but not for calibrating static INT8
(the command line then turns calibration off, so static INT8 falls back to dynamic with a note).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise.errors import ConfigError
from cpuwise.optimize.io import Feed
from cpuwise.optimize.runtimes.onnxruntime import ORT_DTYPES

LABEL_KEYS = ("labels", "label", "y")


def to_numpy(x: Any) -> np.ndarray:
    """A contiguous numpy array from an array or a (CPU or device) tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x))


def as_feed(inputs: Any, names: list[str]) -> Feed:
    """A feed from a dict of arrays, a tuple/list of arrays in `names` order, or one array."""
    if isinstance(inputs, dict):
        return {k: to_numpy(v) for k, v in inputs.items()}
    arrays = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    if len(arrays) != len(names):
        raise ConfigError(f"expected {len(names)} input arrays for {names}, got {len(arrays)}")
    return {n: to_numpy(a) for n, a in zip(names, arrays, strict=True)}


def count_inputs(inputs: Any) -> int:
    """How many model inputs `inputs` holds (a tuple/list or dict of arrays, or one array)."""
    return len(inputs) if isinstance(inputs, (tuple, list, dict)) else 1


def forward_names(module: Any, n: int) -> list[str]:
    """The names of the first `n` parameters of `module.forward`, or input_0..input_{n-1}."""
    try:
        params = [
            p
            for p in inspect.signature(module.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        names = [p.name for p in params][:n]
    except (TypeError, ValueError):
        names = []
    return names if len(names) == n and len(set(names)) == n else [f"input_{i}" for i in range(n)]


def load_npz(path: str | Path, names: list[str]) -> tuple[Feed, np.ndarray | None]:
    """(feed, labels or None) from an .npz holding one array per model input (plus optional 'labels')."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"expected an .npz file of input arrays at {p}, found nothing")
    with np.load(p, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    missing = [n for n in names if n not in data]
    if missing and len(names) == 1 and len([k for k in data if k not in LABEL_KEYS]) == 1:
        only = next(k for k in data if k not in LABEL_KEYS)
        data[names[0]] = data.pop(only)
        missing = []
    if missing:
        raise ConfigError(
            f"{p.name} lacks arrays for inputs {missing}; it has {sorted(data)}. Save it with "
            f"np.savez('{p.name}', " + ", ".join(f"{n}=..." for n in names) + ")"
        )
    labels = next((data[k] for k in LABEL_KEYS if k in data), None)
    return {n: data[n] for n in names}, labels


def synthetic_feed(inputs: list[dict[str, Any]], rows: int = 64, seq: int = 32, seed: int = 0) -> Feed:
    """Random rows for each input description ({name, dtype, shape} with None for dynamic dims)."""
    rng = np.random.default_rng(seed)
    feed: Feed = {}
    for spec in inputs:
        shape = [rows] + [d if isinstance(d, int) and d > 0 else seq for d in spec["shape"][1:]]
        dtype = ORT_DTYPES.get(spec["dtype"], np.float32)
        name = spec["name"].lower()
        if np.issubdtype(dtype, np.floating):
            feed[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in name:
            feed[spec["name"]] = np.ones(shape, dtype=dtype)
        elif "type" in name:
            feed[spec["name"]] = np.zeros(shape, dtype=dtype)
        else:
            feed[spec["name"]] = rng.integers(1, 1000, size=shape).astype(dtype)
    return feed
