"""Tell `cpuwise doctor` about delivered batches, when running under it (cpuwise._channel)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any, TypeVar

from cpuwise import _channel

T = TypeVar("T")


def active_channel(ds: Any = None) -> ModuleType | None:
    """The doctor's channel module when it is active, else None (also when it is not installed).

    Also None when `ds` is a cpuwise Dataset: its own iterator already reports every delivery and
    the epoch's stats, and reporting twice would count every step twice."""
    if ds is not None and _reports_itself(ds):
        return None
    return _channel if _channel.ACTIVE else None


def _reports_itself(ds: Any) -> bool:
    from cpuwise.data.dataset import Dataset

    return isinstance(ds, Dataset)


def timed(it: Iterator[T], channel: ModuleType | None) -> Iterator[T]:
    """Yield from `it`, calling channel.note_next(t_enter, t_exit) around each `next` (and once with
    end=True when the iteration ends), with this iteration's id as the stream."""
    if channel is None:
        yield from it
        return
    stream = id(it)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            channel.note_next(t0, time.perf_counter(), stream=stream, end=True)
            return
        channel.note_next(t0, time.perf_counter(), stream=stream)
        yield item


def emit_stats(ds: Any, channel: ModuleType | None) -> None:
    """Send ds.stats() to the doctor (at an epoch's end), if there is one and ds has stats."""
    if channel is None or not hasattr(ds, "stats"):
        return
    try:
        channel.emit("pipeline_stats", ds.stats())
    except Exception:  # noqa: BLE001 - reporting must never break training
        pass
