"""Input shape tricks: dynamic padding with length buckets, and length-sorted batches.

Sequence models are usually fed padded to a fixed length (128) although real inputs are short. Here a
batch is padded only to its longest real sequence, rounded up to a bucket (a multiple of `multiple`, so
ORT sees few distinct shapes), and large inputs are split into batches of similar length.

A `Feed` is a dict of input name -> numpy array with the batch on axis 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

Feed = dict[str, np.ndarray]


@dataclass(frozen=True)
class IOConfig:
    """Input tricks used when running a model."""

    dynamic_padding: bool = False
    bucket_multiple: int = 8
    batch_size: int = 32

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SequenceSpec:
    """Which inputs carry a sequence axis (axis 1), and which of them is the mask.

    `mask_pads`: the mask marks padding (torch's `src_key_padding_mask`: True = pad) instead of real
    tokens (Hugging Face's `attention_mask`: 1 = token). Padding always comes after the real tokens.
    """

    mask: str
    sequence_inputs: tuple[str, ...]
    pad_values: dict[str, int] = field(default_factory=dict)  # default 0
    mask_pads: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "mask": self.mask,
            "sequence_inputs": list(self.sequence_inputs),
            "pad_values": self.pad_values,
            "mask_pads": self.mask_pads,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SequenceSpec:
        return cls(d["mask"], tuple(d["sequence_inputs"]), dict(d.get("pad_values", {})),
                   bool(d.get("mask_pads", False)))


def _binary(v: np.ndarray) -> bool:
    return v.dtype == np.bool_ or (np.issubdtype(v.dtype, np.integer) and bool(np.isin(v, (0, 1)).all()))


def detect_sequence_spec(feed: Feed) -> SequenceSpec | None:
    """A spec when the feed has a 2-D 0/1 (or bool) mask and inputs that share its length (pure).

    The mask is an attention mask when every row starts with a real token (first column all 1), a
    padding mask when it is bool or named "*mask*" and every first column is 0/False (torch's key
    padding mask). Sequence inputs are the 2-D integer inputs of the mask's shape and the float inputs
    of shape (batch, length, ...). A 0/1 input not named "*mask*" counts only beside another such input.
    """
    found: list[tuple[bool, str, bool]] = []
    for k, v in feed.items():
        if v.ndim != 2 or len(v) == 0 or not _binary(v):
            continue
        named = "mask" in k.lower()
        if v[:, 0].all():
            found.append((not named, k, False))
        elif (named or v.dtype == np.bool_) and not v[:, 0].any():
            found.append((not named, k, True))
    if not found:
        return None
    unnamed, mask, pads = min(found)
    shape = feed[mask].shape
    seq = tuple(
        k for k, v in feed.items()
        if v.shape[:2] == shape and ((v.ndim == 2 and not np.issubdtype(v.dtype, np.floating))
                                     or (v.ndim >= 3 and np.issubdtype(v.dtype, np.floating)))
    )
    if unnamed and len(seq) < 2:
        return None
    return SequenceSpec(mask=mask, sequence_inputs=seq, mask_pads=pads)


def bucket_length(n: int, multiple: int = 8, cap: int | None = None) -> int:
    """`n` rounded up to a multiple of `multiple` (at least 1), never beyond `cap` (pure)."""
    out = max(1, -(-n // max(1, multiple)) * max(1, multiple))
    return min(out, cap) if cap else out


def lengths(feed: Feed, spec: SequenceSpec) -> np.ndarray:
    """Real length per row: index of the last real (unpadded) position + 1."""
    mask = (feed[spec.mask] == 0) if spec.mask_pads else (feed[spec.mask] != 0)
    any_ = mask.any(axis=1)
    last = mask.shape[1] - np.argmax(mask[:, ::-1], axis=1)
    return np.where(any_, last, 1)


def trim(feed: Feed, spec: SequenceSpec, multiple: int = 8) -> Feed:
    """Cut the padding of a batch down to its longest real row, rounded to a bucket."""
    full = feed[spec.mask].shape[1]
    n = bucket_length(int(lengths(feed, spec).max()), multiple, cap=full)
    return {k: (v[:, :n] if k in spec.sequence_inputs else v) for k, v in feed.items()}


def take(feed: Feed, idx: np.ndarray | slice) -> Feed:
    """The rows `idx` of every input."""
    return {k: v[idx] for k, v in feed.items()}


def stack(feeds: list[Feed], spec: SequenceSpec | None) -> Feed:
    """One batch from single-or-multi-row feeds, padding sequence inputs to the longest."""
    if spec is None:
        return {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
    n = max(f[spec.mask].shape[1] for f in feeds)
    out: Feed = {}
    for k in feeds[0]:
        if k in spec.sequence_inputs:
            pad = 1 if (k == spec.mask and spec.mask_pads) else spec.pad_values.get(k, 0)
            out[k] = np.concatenate(
                [np.pad(f[k], ((0, 0), (0, n - f[k].shape[1])) + ((0, 0),) * (f[k].ndim - 2),
                        constant_values=pad) for f in feeds]
            )
        else:
            out[k] = np.concatenate([f[k] for f in feeds])
    return out


def plan_batches(row_lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length (sorted, stable) (pure)."""
    order = np.argsort(row_lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), max(1, batch_size))]


def run_many(run: Callable[[Feed], np.ndarray], feeds: list[Feed]) -> list[np.ndarray]:
    """Outputs of `run` for each feed: through the runner's `map` when it has one (several batches in
    flight at once: OpenVINO streams, ORT requests), else one by one."""
    many = getattr(run, "map", None)
    return list(many(feeds)) if many is not None else [run(f) for f in feeds]


def run_batched(
    run: Callable[[Feed], np.ndarray],
    feed: Feed,
    batch_size: int,
    spec: SequenceSpec | None = None,
    multiple: int = 8,
) -> np.ndarray:
    """Run a large feed in batches (length-bucketed when `spec` is given); rows come back in input order."""
    n = len(next(iter(feed.values())))
    if spec is None:
        parts = [take(feed, slice(i, i + batch_size)) for i in range(0, n, batch_size)]
        return np.concatenate(run_many(run, parts))
    plan = plan_batches(lengths(feed, spec), batch_size)
    outs = run_many(run, [trim(take(feed, idx), spec, multiple) for idx in plan])
    out = np.empty((n,) + outs[0].shape[1:], dtype=outs[0].dtype)
    for idx, y in zip(plan, outs, strict=True):
        out[idx] = y
    return out


def run_all(
    run: Callable[[Feed], np.ndarray], feed: Feed, spec: SequenceSpec | None, io: IOConfig
) -> np.ndarray:
    """Outputs for every row of `feed`, using the I/O tricks in `io`."""
    return run_batched(run, feed, io.batch_size, spec if io.dynamic_padding else None, io.bucket_multiple)
