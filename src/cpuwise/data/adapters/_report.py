"""Tell `cpuwise doctor` about the batches an adapter delivers, through `cpuwise._channel`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from cpuwise import _channel
from cpuwise.data.dataset import Dataset

T = TypeVar("T")


def reports_itself(ds: Any) -> bool:
    """True for a cpuwise Dataset: its own iterator reports every delivery and the epoch's stats, so
    an adapter over it reports nothing (every step would count twice)."""
    return isinstance(ds, Dataset)


def reported(ds: Any, batches: Iterable[T]) -> Iterator[T]:
    """Yield `batches` (made from `ds`), timing each `next` for the doctor (`_channel.timed`) and
    sending `ds.stats()` when they end; both only when `ds` does not report itself."""
    if reports_itself(ds):
        yield from batches
        return
    yield from _channel.timed(batches)
    emit_stats(ds)


def emit_stats(ds: Any) -> None:
    """Send ds.stats() to the doctor (at an epoch's end), if one listens and ds has stats of its own
    to report."""
    if not _channel.ACTIVE or reports_itself(ds) or not hasattr(ds, "stats"):
        return
    try:
        _channel.emit("pipeline_stats", ds.stats())
    except Exception:  # noqa: BLE001 - reporting must never break training
        pass
