"""Run a frozen backbone once and cache its outputs, so training a new head never decodes again.

    feats = cd.cache_features(backbone, ds, path="cache/effnet", normalize="imagenet")
    for epoch in range(50):
        for x, y in feats.shuffle(seed=0).batch(256).to_torch():   # no JPEG decode, no backbone
            ...

`ds` yields samples `(input, label)` (or `input` alone); they are batched, moved to `device` with the
torch adapter (uint8 images normalised on the device), and run through `backbone` in eval mode under
inference_mode. Features go to memory (path=None) or to `path/features.npy`, memory-mapped, beside
`labels.npy` and `manifest.json`. The manifest holds a fingerprint of the backbone's weights and of
the data; a later call with the same fingerprint re-uses the files, a different one rebuilds them.
Random augmentations in `ds` are frozen into the cache: cache a deterministic view (center crop).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise._optional import require
from cpuwise.data.adapters.torch import to_torch
from cpuwise.data.dataset import Dataset
from cpuwise.data.formats.sequence import from_sequence
from cpuwise.data.stages.batch import collate
from cpuwise.errors import ConfigError

log = logging.getLogger("cpuwise.data")

MANIFEST = "manifest.json"
FEATURES = "features.npy"
LABELS = "labels.npy"
FORMAT_VERSION = 1
_HEADER_BYTES = 256  # .npy header reserved up front: the row count is known only at the end


class FeatureTable(Sequence[Any]):
    """(feature, label) rows over feature and label arrays; re-opens a memmap lazily after pickling."""

    def __init__(self, features: np.ndarray | None, labels: np.ndarray | None,
                 path: str | None = None) -> None:
        self._features, self.labels, self.path = features, labels, path

    @property
    def features(self) -> np.ndarray:
        if self._features is None:
            assert self.path is not None
            self._features = np.load(os.path.join(self.path, FEATURES), mmap_mode="r")
        return self._features

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_features"] = None  # a worker maps the file itself instead of receiving a copy
        return state

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        x = self.features[i]
        return x if self.labels is None else (x, self.labels[i])


# --- fingerprints ------------------------------------------------------------------------------------

def model_fingerprint(model: Any) -> str:
    """sha256 over the backbone's class name and every parameter and buffer (name, dtype, shape, bytes)."""
    import torch  # lazy: the torch extra; this module loads with cd.cache_features, before it is needed

    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, t in model.state_dict().items():
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(ds: Any) -> str:
    """sha256 over what identifies the data without decoding it: the source items (file paths with
    their size and modification time, or array bytes), and every stage with its function's code and
    settings (a map of decode_crop(224) differs from decode_crop(256))."""
    h = hashlib.sha256()
    if not isinstance(ds, Dataset):  # a plain sequence or iterable
        if isinstance(ds, Sequence):
            _hash_sequence(h, ds)
            return h.hexdigest()
        raise ConfigError(
            f"cache_features: cannot fingerprint a {type(ds).__name__} without reading it; expected a "
            "cpuwise Dataset or a sequence. Fix: pass data_key='...' naming this data (and its version)."
        )
    for spec in ds.specs():
        h.update(spec.describe().encode())
        seq = getattr(spec, "seq", None)
        if seq is not None:
            _hash_sequence(h, seq)
        for attr in ("fn", "pred", "collate"):
            fn = getattr(spec, attr, None)
            if fn is not None:
                h.update(_describe_fn(fn).encode())
    return h.hexdigest()


def _describe_fn(fn: Any) -> str:
    """A run-independent description of a function or transform object (no memory addresses)."""
    if isinstance(fn, functools.partial):
        return f"partial({_describe_fn(fn.func)}, {fn.args!r}, {sorted(fn.keywords.items())!r})"
    code = getattr(fn, "__code__", None)
    if code is not None:
        digest = hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:16]
        text = f"{fn.__module__}.{fn.__qualname__}:{digest}:{getattr(fn, '__defaults__', None)!r}"
    elif type(fn).__repr__ is not object.__repr__:
        text = repr(fn)
    else:
        state = sorted(vars(fn).items()) if hasattr(fn, "__dict__") else ""
        text = f"{type(fn).__module__}.{type(fn).__qualname__}{state}"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _hash_sequence(h: Any, seq: Any) -> None:
    paths = getattr(seq, "paths", None)
    labels = getattr(seq, "labels", None)
    if paths is not None:
        seq = paths
    if isinstance(labels, np.ndarray):
        h.update(labels.tobytes())
    if isinstance(seq, np.ndarray) and seq.dtype != object:
        h.update(seq.tobytes())
        return
    n = len(seq)
    h.update(f"n={n}".encode())
    for i in range(n):
        item = seq[i]
        first = item[0] if isinstance(item, tuple) and item else item
        if isinstance(first, str) and len(first) < 4096 and os.path.isfile(first):
            st = os.stat(first)
            h.update(f"{first}|{st.st_size}|{st.st_mtime_ns}".encode())
        elif isinstance(item, np.ndarray):
            h.update(item.tobytes())
        else:
            h.update(repr(item).encode())


# --- cache files ----------------------------------------------------------------------------------

def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version 1.0 .npy header padded to exactly _HEADER_BYTES."""
    d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    text = repr(d).encode("latin1")
    pad = _HEADER_BYTES - 10 - len(text) - 1
    if pad < 0:
        raise ConfigError(f"feature shape {shape} is too large to describe in a .npy header.")
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of the cache at `path` when it is one this version wrote, else None."""
    try:
        m = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    want = {"version": int, "fingerprint": str, "rows": int, "feature_shape": list, "dtype": str,
            "has_labels": bool}
    if not isinstance(m, dict) or any(not isinstance(m.get(k), t) for k, t in want.items()):
        return None
    return m


def reusable(root: Path, manifest: dict[str, Any] | None, fingerprint: str) -> bool:
    """True when the files under `root` are the cache `manifest` describes, for this fingerprint.

    Everything is checked, nothing trusted: the arrays load without pickles (np.load refuses object
    arrays), with the manifest's dtype and shapes. A mismatch (an older or interrupted run, a
    tampered or truncated file) means rebuild.
    """
    if manifest is None or manifest["fingerprint"] != fingerprint or manifest["version"] != FORMAT_VERSION:
        return False
    try:
        for name in (FEATURES, LABELS) if manifest["has_labels"] else (FEATURES,):
            if not (root / name).is_file():  # a FIFO would block np.load
                raise ValueError(f"expected a file {name}, found none or something else")
        feats = np.load(root / FEATURES, mmap_mode="r", allow_pickle=False)
        want = (manifest["rows"], *manifest["feature_shape"])
        if feats.dtype != np.dtype(manifest["dtype"]) or feats.shape != want:
            raise ValueError(f"expected features {want} {manifest['dtype']}, found {feats.shape} "
                             f"{feats.dtype}")
        if manifest["has_labels"]:
            labels = np.load(root / LABELS, mmap_mode="r", allow_pickle=False)
            if labels.shape[:1] != (manifest["rows"],):
                raise ValueError(f"expected {manifest['rows']} labels, found shape {labels.shape}")
    except (OSError, ValueError, TypeError) as exc:
        log.warning("cpuwise.data: the feature cache at '%s' is not usable (%s); rebuilding it", root, exc)
        return False
    return True


def cache_features(
    backbone: Any,
    ds: Any,
    path: str | os.PathLike[str] | None = None,
    device: Any = "cpu",
    batch_size: int | None = 64,
    *,
    normalize: Any = None,
    channels_last: bool = False,
    dtype: Any = None,
    store_dtype: Any = np.float32,
    rebuild: bool = False,
    data_key: str | None = None,
) -> Any:
    """Compute `backbone(input)` once for every sample of `ds` and return a cpuwise Dataset of
    (feature, label) (feature alone for samples without a label).

    Args:
        backbone: a torch.nn.Module (frozen: run in eval mode, under inference_mode; its mode is restored).
        ds: a Dataset (or any iterable) of samples; batch_size=None means `ds` already yields batches.
        path: a directory for the memory-mapped cache; None keeps features in memory.
        device, normalize, channels_last, dtype: as for to_torch (how inputs reach the backbone);
            dtype defaults to float32, so uint8 images arrive as float (0..1, or normalised).
        store_dtype: numpy dtype of the stored features (np.float16 halves the disk and RAM).
        rebuild: recompute even when the fingerprint matches.
        data_key: identifies the data instead of fingerprinting `ds` (e.g. "imagenet-val-v2"); needed
            for a plain iterable, and faster for millions of files (no stat of each).
    """
    torch = require("torch", extra="torch", purpose="computing features with a backbone")
    dtype = torch.float32 if dtype is None else dtype  # uint8 images reach the backbone as float 0..1
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1 or None (ds already batched), got {batch_size}.")
    data_id = data_key if data_key is not None else data_fingerprint(ds)
    fingerprint = hashlib.sha256(
        f"{model_fingerprint(backbone)}|{data_id}|{np.dtype(store_dtype).str}|{normalize!r}|{dtype}".encode()
    ).hexdigest()
    if path is not None:
        root = Path(path)
        manifest = read_manifest(root)
        if not rebuild and manifest is not None and reusable(root, manifest, fingerprint):
            return _dataset(root, manifest)
        root.mkdir(parents=True, exist_ok=True)
    batches = _batched(ds, batch_size)
    was_training = backbone.training
    backbone.eval()
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            feats, labels = _run(backbone, to_torch(batches, device=device, normalize=normalize,
                                                    channels_last=channels_last, dtype=dtype),
                                 np.dtype(store_dtype), None if path is None else Path(path))
    finally:
        backbone.train(was_training)
    if path is None:
        assert feats is not None
        return from_sequence(FeatureTable(feats, labels))
    root = Path(path)
    manifest = {
        "version": FORMAT_VERSION, "fingerprint": fingerprint, "rows": int(_rows(root)),
        "feature_shape": list(np.load(root / FEATURES, mmap_mode="r").shape[1:]),
        "dtype": np.dtype(store_dtype).str, "has_labels": labels is not None,
        "seconds": round(time.perf_counter() - t0, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / MANIFEST)  # the manifest appears last: a crash leaves no valid-looking cache
    return _dataset(root, manifest)


def _rows(root: Path) -> int:
    return int(np.load(root / FEATURES, mmap_mode="r").shape[0])


def _dataset(root: Path, manifest: dict[str, Any]) -> Dataset:
    labels = np.load(root / LABELS, allow_pickle=False) if manifest["has_labels"] else None
    return from_sequence(FeatureTable(None, labels, str(root)))


def _batched(ds: Any, batch_size: int | None) -> Any:
    if batch_size is None:
        return ds
    if hasattr(ds, "batch"):
        return ds.batch(batch_size)
    def gen() -> Any:
        buf: list[Any] = []
        for sample in ds:
            buf.append(sample)
            if len(buf) == batch_size:
                yield collate(buf)
                buf = []
        if buf:
            yield collate(buf)

    return list(gen())


def _run(backbone: Any, batches: Any, store: np.dtype, root: Path | None) -> tuple[np.ndarray | None, Any]:
    """Run the backbone over the batches; features stream to root/features.npy (or to memory)."""
    if root is not None:
        for name in (MANIFEST, FEATURES, LABELS):
            (root / name).unlink(missing_ok=True)
    out_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    has_labels: bool | None = None
    shape: tuple[int, ...] | None = None
    rows = 0
    f = open(root / (FEATURES + ".tmp"), "wb") if root is not None else None
    try:
        if f is not None:
            f.write(b"\0" * _HEADER_BYTES)
        for batch in batches:
            x, y = _split(batch)
            has_labels = y is not None if has_labels is None else has_labels
            out = _first_output(backbone(x))
            arr = out.detach().float().cpu().numpy().astype(store, copy=False)
            shape = shape or tuple(arr.shape[1:])
            if tuple(arr.shape[1:]) != shape:
                raise ConfigError(f"backbone outputs changed shape: {shape} then {tuple(arr.shape[1:])}; "
                                  "fix: make every input the same size (crop or resize before batching).")
            rows += len(arr)
            if f is not None:
                f.write(np.ascontiguousarray(arr).tobytes())
            else:
                out_parts.append(arr)
            if y is not None:
                label_parts.append(y.cpu().numpy() if hasattr(y, "cpu") else np.asarray(y))
        if rows == 0:
            raise ConfigError("cache_features: expected at least one sample in ds, found none.")
        labels = np.concatenate(label_parts) if has_labels else None
        if f is not None:
            assert root is not None and shape is not None
            f.seek(0)
            f.write(_npy_header((rows, *shape), store))
            f.close()
            os.replace(root / (FEATURES + ".tmp"), root / FEATURES)
            if labels is not None:
                np.save(root / LABELS, labels)
            return None, labels
        return np.concatenate(out_parts), labels
    finally:
        if f is not None and not f.closed:
            f.close()
            (root / (FEATURES + ".tmp")).unlink(missing_ok=True)  # type: ignore[operator]


def _split(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, tuple | list):
        if len(batch) == 1:
            return batch[0], None
        if len(batch) == 2:
            return batch[0], batch[1]
        raise ConfigError(
            f"cache_features expects samples (input, label) or input, found {len(batch)} fields.")
    return batch, None


def _first_output(out: Any) -> Any:
    if isinstance(out, tuple | list):
        return out[0]
    if isinstance(out, dict):
        return next(iter(out.values()))
    return out
