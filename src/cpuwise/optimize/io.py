"""Input shape tricks: dynamic padding with length buckets, and batching of concurrent requests.

Sequence models are usually fed padded to a fixed length (128) although real inputs are short. Here a
batch is padded only to its longest real sequence, rounded up to a bucket (a multiple of `multiple`, so
ORT sees few distinct shapes), and large inputs are split into batches of similar length.

A `Feed` is a dict of input name -> numpy array with the batch on axis 0.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Feed = dict[str, np.ndarray]


@dataclass(frozen=True)
class SequenceSpec:
    """Which inputs carry a sequence axis (axis 1), and which of them is the attention mask."""

    mask: str
    sequence_inputs: tuple[str, ...]
    pad_values: dict[str, int] = field(default_factory=dict)  # default 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mask": self.mask,
            "sequence_inputs": list(self.sequence_inputs),
            "pad_values": self.pad_values,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SequenceSpec:
        return cls(d["mask"], tuple(d["sequence_inputs"]), dict(d.get("pad_values", {})))


def detect_sequence_spec(feed: Feed) -> SequenceSpec | None:
    """A spec when the feed has 2-D integer inputs of one length and one of them is a 0/1 mask (pure)."""
    ints = {k: v for k, v in feed.items() if v.ndim == 2 and np.issubdtype(v.dtype, np.integer)}
    if not ints or len({v.shape for v in ints.values()}) != 1:
        return None
    masks = [k for k, v in ints.items() if np.isin(v, (0, 1)).all() and "mask" in k.lower()]
    masks = masks or [k for k, v in ints.items() if np.isin(v, (0, 1)).all() and v[:, 0].all()]
    if not masks:
        return None
    return SequenceSpec(mask=masks[0], sequence_inputs=tuple(ints))


def bucket_length(n: int, multiple: int = 8, cap: int | None = None) -> int:
    """`n` rounded up to a multiple of `multiple` (at least 1), never beyond `cap` (pure)."""
    out = max(1, -(-n // max(1, multiple)) * max(1, multiple))
    return min(out, cap) if cap else out


def lengths(feed: Feed, spec: SequenceSpec) -> np.ndarray:
    """Real length per row: index of the last non-zero mask entry + 1."""
    mask = feed[spec.mask] != 0
    any_ = mask.any(axis=1)
    last = mask.shape[1] - np.argmax(mask[:, ::-1], axis=1)
    return np.where(any_, last, 1)


def trim(feed: Feed, spec: SequenceSpec, multiple: int = 8) -> Feed:
    """Cut the padding of a batch down to its longest real row, rounded to a bucket."""
    full = feed[spec.mask].shape[1]
    n = bucket_length(int(lengths(feed, spec).max()), multiple, cap=full)
    return {k: (v[:, :n] if k in spec.sequence_inputs else v) for k, v in feed.items()}


def take(feed: Feed, idx: np.ndarray | slice) -> Feed:
    return {k: v[idx] for k, v in feed.items()}


def stack(feeds: list[Feed], spec: SequenceSpec | None) -> Feed:
    """One batch from single-or-multi-row feeds, padding sequence inputs to the longest."""
    if spec is None:
        return {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
    n = max(f[spec.mask].shape[1] for f in feeds)
    out: Feed = {}
    for k in feeds[0]:
        if k in spec.sequence_inputs:
            pad = spec.pad_values.get(k, 0)
            out[k] = np.concatenate(
                [np.pad(f[k], ((0, 0), (0, n - f[k].shape[1])), constant_values=pad) for f in feeds]
            )
        else:
            out[k] = np.concatenate([f[k] for f in feeds])
    return out


def plan_batches(row_lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length (sorted, stable) (pure)."""
    order = np.argsort(row_lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), max(1, batch_size))]


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
        return np.concatenate([run(take(feed, slice(i, i + batch_size))) for i in range(0, n, batch_size)])
    plan = plan_batches(lengths(feed, spec), batch_size)
    parts = [(idx, run(trim(take(feed, idx), spec, multiple))) for idx in plan]
    out = np.empty((n,) + parts[0][1].shape[1:], dtype=parts[0][1].dtype)
    for idx, y in parts:
        out[idx] = y
    return out


class MicroBatcher:
    """Batches concurrent single requests: waits up to `max_wait_ms` for up to `max_batch` of them.

    mb = MicroBatcher(predict_feed, max_batch=16, max_wait_ms=2, spec=spec)
    y = mb.submit({"input_ids": ids, "attention_mask": mask}).result()
    mb.close()
    """

    def __init__(
        self,
        run: Callable[[Feed], np.ndarray],
        *,
        max_batch: int = 16,
        max_wait_ms: float = 2.0,
        spec: SequenceSpec | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self._spec = spec
        self._q: queue.Queue[tuple[Feed, Future[np.ndarray]] | None] = queue.Queue()
        self.batches_run = 0
        self._thread = threading.Thread(target=self._loop, name="cpuwise-microbatcher", daemon=True)
        self._thread.start()

    def submit(self, feed: Feed) -> Future[np.ndarray]:
        fut: Future[np.ndarray] = Future()
        self._q.put((feed, fut))
        return fut

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        import time

        while True:
            item = self._q.get()
            if item is None:
                return
            items = [item]
            deadline = time.perf_counter() + self.max_wait
            stop = False
            while len(items) < self.max_batch:
                try:
                    nxt = self._q.get(timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                items.append(nxt)
            self._serve(items)
            if stop:
                return

    def _serve(self, items: list[tuple[Feed, Future[np.ndarray]]]) -> None:
        feeds = [f for f, _ in items]
        sizes = [len(next(iter(f.values()))) for f in feeds]
        try:
            batch = stack(feeds, self._spec)
            if self._spec is not None:
                batch = trim(batch, self._spec)
            out = self._run(batch)
            self.batches_run += 1
        except Exception as exc:  # noqa: BLE001 - the error goes to every waiting caller
            for _, fut in items:
                fut.set_exception(exc)
            return
        start = 0
        for (_, fut), k in zip(items, sizes, strict=True):
            fut.set_result(out[start : start + k])
            start += k
