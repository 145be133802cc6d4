"""Inputs as feeds: what a caller passes (tensors or arrays), an .npz file, or synthetic rows.

Synthetic rows are fine for timing and for agreement with FP32, but not for calibrating static INT8
(the command line then turns calibration off, so static INT8 falls back to dynamic with a note).
"""

from __future__ import annotations

import inspect
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise._optional import require
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


def is_texts(inputs: Any) -> bool:
    """True for a non-empty list/tuple of strings (text for a model folder's tokenizer)."""
    return isinstance(inputs, (list, tuple)) and bool(inputs) and all(isinstance(x, str) for x in inputs)


def tokenize(tokenizer_file: str | Path, texts: list[str], names: list[str], max_length: int = 512) -> Feed:
    """Token ids (and attention mask / token types, as `names` asks) for `texts`, padded to the longest."""
    tk = require("tokenizers", extra="models", purpose="tokenising text inputs")
    tok = tk.Tokenizer.from_file(str(tokenizer_file))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return pad_encodings(tok.encode_batch(list(texts)), names or ["input_ids", "attention_mask"])


def pad_encodings(encs: Sequence[Any], names: Sequence[str]) -> Feed:
    """A feed of the model inputs `names` asks for (input_ids, attention_mask, token_type_ids) from
    `tokenizers` encodings, zero-padded to the longest."""
    n = max(len(e.ids) for e in encs)
    feed = {k: np.zeros((len(encs), n), dtype=np.int64) for k in names}
    for i, e in enumerate(encs):
        k = len(e.ids)
        if "input_ids" in feed:
            feed["input_ids"][i, :k] = e.ids
        if "attention_mask" in feed:
            feed["attention_mask"][i, :k] = 1
        if "token_type_ids" in feed:
            feed["token_type_ids"][i, :k] = e.type_ids
    return feed


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
    fix = f"fix: save plain numeric arrays with np.savez('{p.name}', name=array, ...)"
    try:
        z = np.load(p, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ConfigError(f"expected an .npz archive (np.savez) in {p.name}, found a single array; {fix}")
        with z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, ConfigError):
            raise
        why = "object arrays (pickled Python objects are never loaded)" if "pickle" in str(exc) else str(exc)
        msg = f"expected an .npz archive of numeric arrays in {p.name}, found {why}; {fix}"
        raise ConfigError(msg) from exc
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


def _kind(dtype: np.dtype[Any]) -> str:
    if dtype == np.bool_:
        return "bool"
    if np.issubdtype(dtype, np.integer):
        return "integer"
    if np.issubdtype(dtype, np.floating):
        return "float"
    return dtype.str


def check_feed(feed: Feed, inputs: list[dict[str, Any]], *, source: str = "the inputs") -> Feed:
    """`feed` checked against the model's input descriptions, cast to their dtypes where that is exact.

    Each input must be present, have the model's rank and fixed dimensions, hold at least one row, the
    same number of rows as the others, and a compatible type (integers may feed float inputs; floats
    never feed integer inputs, strings and objects never feed anything). Raises ConfigError naming the
    input, the expected and the found shape or type.
    """
    names = [i["name"] for i in inputs]
    missing = [n for n in names if n not in feed]
    if missing:
        raise ConfigError(
            f"{source}: missing input {missing[0]!r}: expected {len(names)} inputs {names}, found "
            f"{sorted(feed)}"
        )
    out: Feed = {}
    rows: dict[str, int] = {}
    for spec in inputs:
        name, x = spec["name"], np.asarray(feed[spec["name"]])
        want = [d if isinstance(d, int) and d > 0 else None for d in spec["shape"]]
        shown = "(" + ", ".join("N" if i == 0 and d is None else (str(d) if d else "?")
                                for i, d in enumerate(want)) + ("," if len(want) == 1 else "") + ")"
        if x.ndim != len(want) or any(w is not None and w != f for w, f in zip(want, x.shape, strict=False)):
            raise ConfigError(
                f"{source}: input {name!r}: expected shape {shown} (rank {len(want)}), found {x.shape}; fix: "
                "pass one row per item along axis 0 with the model's other dimensions"
            )
        if x.shape[0] == 0:
            raise ConfigError(f"{source}: input {name!r}: expected at least one row, found shape {x.shape}")
        dtype = ORT_DTYPES.get(spec["dtype"])
        if dtype is not None and x.dtype != dtype:
            have, need = _kind(x.dtype), _kind(np.dtype(dtype))
            exact = have == need or (need == "float" and have in ("integer", "bool")) or (
                need == "integer" and have == "bool")
            if not exact:
                raise ConfigError(
                    f"{source}: input {name!r}: expected {np.dtype(dtype).name} ({spec['dtype']}), found "
                    f"{x.dtype} ({have}); fix: convert it, e.g. x.astype(np.{np.dtype(dtype).name})"
                )
            x = x.astype(dtype)
        out[name] = x
        rows[name] = x.shape[0]
    if len(set(rows.values())) > 1:
        raise ConfigError(f"{source}: expected the same number of rows in every input, found {rows}")
    return out
