"""The cheap channel through which an instrumented job reports to `cpuwise doctor`.

The doctor sets the environment variable CPUWISE_CHANNEL to a file path; every process of the job
(main and DataLoader workers) appends one JSON object per line to it with `os.write` on an O_APPEND
descriptor, so lines from several processes never interleave.

Steps are summarised where they happen, so that what crosses the wire grows with time, not with the
number of steps (a loop of tiny steps makes tens of thousands a second). `note_next` (one call per
user-facing `__next__`) pairs deliveries into steps (step i runs from delivery i to delivery i+1 of
the same iterator: its data-wait is the time inside `__next__` i, its sync the host-blocked-on-device
time reported before `__next__` i+1, the rest compute), and adds each step to a summary of the
BUCKET_S window its start falls in: count, sums, a histogram of step times (HIST_BINS_PER_OCTAVE bins
per factor of 2) and the first/last times. At most every FLUSH_AFTER_S one "steps" record carries the
summaries and the first RAW_PER_FLUSH steps whole (for plots); the doctor merges them (`cpuwise._steps`).
Everything else is written at once, after the pending steps.

Callers (cpuwise.data iterators, the DataLoader instrumentation, `cpuwise.watch`, framework callbacks)
check `ACTIVE` first so the channel costs nothing outside the doctor:

    from cpuwise import _channel as channel
    if channel.ACTIVE:
        channel.note_next(t_enter, t_exit)        # around one user-facing __next__
        channel.emit("pipeline_stats", ds.stats())

`timed(iterable)` is the one loop that times a user-facing `__next__` and reports it; wrappers that
hand batches to a training loop (adapters, `cpuwise.watch`) use it instead of timing by hand.

This module imports only the standard library: it is loaded at start-up in every Python process of
a job under the doctor, and by the data workers, which must start fast.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

ENV_VAR = "CPUWISE_CHANNEL"

PATH: str | None = os.environ.get(ENV_VAR) or None
ACTIVE: bool = PATH is not None

FLUSH_AFTER_S = 0.1
BUCKET_S = 0.25  # steps are summed per 0.25 s of their start time (time.perf_counter, system-wide)
RAW_PER_FLUSH = 32  # whole steps sent with each flush (the first ones since the previous flush)
MAX_OPEN_STREAMS = 256  # iterators abandoned mid-way (a `break`) are forgotten beyond this many
# The step-time histogram: 8 bins per factor of 2 (each within 6-12 % of its value) from 2**-20 s (~1 us)
# to 2**12 s (68 min); shorter and longer steps land in the first and last bin.
HIST_BINS_PER_OCTAVE = 8
HIST_MIN_EXP = -20
HIST_BINS = 32 * HIST_BINS_PER_OCTAVE

_fd: int | None = None
_fd_pid: int | None = None
_sync_s: float = 0.0  # host-blocked time (device syncs, collectives) since the last note_next
_coll_s: float = 0.0  # the part of _sync_s spent in collectives (waiting for other ranks)
_atexit_registered = False
# Step summaries not yet written, in the process `_agg_pid` (a forked child starts afresh).
_agg_pid: int | None = None
_open: dict[tuple[str, int], tuple[float, float, bool]] = {}  # (source, stream) -> (a, b, first of stream)
_acc: dict[tuple[str, int], list[Any]] = {}  # (source, bucket) -> summary (see _add)
_raw: list[list[Any]] = []
_counts: dict[str, int] = {}  # source -> steps so far in this process (the index of the next one)
_last_b = 0.0  # the latest delivery
_since: float | None = None  # when the oldest unwritten step or delivery happened
# Called with (t_enter, t_exit, source, item) on every delivery (not the end of an iteration): a
# `cpuwise doctor --try-fixes` trial counts and times its steps there, and may stop the job.
_delivery_hook: Callable[[float, float, str, Any], None] | None = None


def bin_of(seconds: float) -> int:
    """The histogram bin of a step time (see HIST_*)."""
    if seconds <= 2.0**HIST_MIN_EXP:
        return 0
    m, e = math.frexp(seconds)  # seconds = m * 2**e, 0.5 <= m < 1
    i = (e - 1 - HIST_MIN_EXP) * HIST_BINS_PER_OCTAVE + int((m - 0.5) * 2 * HIST_BINS_PER_OCTAVE)
    return i if i < HIST_BINS else HIST_BINS - 1


def bin_bounds(i: int) -> tuple[float, float]:
    """The [low, high) step times of histogram bin `i`."""
    octave, sub = divmod(i, HIST_BINS_PER_OCTAVE)
    base = 2.0 ** (octave + HIST_MIN_EXP)
    return base * (1 + sub / HIST_BINS_PER_OCTAVE), base * (1 + (sub + 1) / HIST_BINS_PER_OCTAVE)


def _write_text(text: str) -> None:
    global _fd, _fd_pid
    if PATH is None:
        return
    pid = os.getpid()
    if _fd is None or _fd_pid != pid:
        # Reopen after a fork: the inherited descriptor would work, but a fresh one keeps
        # each process's file state its own.
        try:
            _fd = os.open(PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        _fd_pid = pid
    try:
        os.write(_fd, text.encode())
    except OSError:  # the doctor went away: the job must not fail because of it
        pass


def _write(obj: dict[str, Any]) -> None:
    flush()
    obj["pid"] = os.getpid()
    _write_text(json.dumps(obj, separators=(",", ":"), default=str) + "\n")


def _restart(pid: int) -> None:
    """Forget the step state (a forked child's copy of its parent's: the parent reports those)."""
    global _agg_pid, _open, _acc, _raw, _counts, _last_b, _since, _atexit_registered
    _agg_pid, _open, _acc, _raw, _counts, _last_b, _since = pid, {}, {}, [], {}, 0.0, None
    if not _atexit_registered:
        atexit.register(flush)
        _atexit_registered = True


def flush() -> None:
    """Write the pending step summaries now (called at exit, on emit, when switching path, and by
    `note_next` every FLUSH_AFTER_S)."""
    global _acc, _raw, _since
    if _agg_pid != os.getpid():
        return
    if _since is None:
        return
    groups = [[src, bucket, *acc[:9], sorted(acc[9].items()), acc[10]] for (src, bucket), acc in _acc.items()]
    record = {"k": "steps", "b": _last_b, "g": groups, "raw": _raw, "pid": _agg_pid}
    _acc, _raw, _since = {}, [], None
    _write_text(json.dumps(record, separators=(",", ":")) + "\n")


def _add(source: str, a: float, wait: float, compute: float, sync: float, first: bool, coll: float) -> None:
    """Add one step to its bucket's summary: [n, wait, compute, sync, max, firsts, first-wait, start of the
    first, end of the last, {histogram bin: count}, collectives (part of sync)]."""
    total = wait + compute + sync
    key = (source, int(a / BUCKET_S))
    acc = _acc.get(key)
    if acc is None:
        acc = _acc[key] = [0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, a, a, {}, 0.0]
    acc[10] += coll
    acc[0] += 1
    acc[1] += wait
    acc[2] += compute
    acc[3] += sync
    if total > acc[4]:
        acc[4] = total
    if first:
        acc[5] += 1
        acc[6] += wait
    if a < acc[7]:
        acc[7] = a
    if a + total > acc[8]:
        acc[8] = a + total
    hist = acc[9]
    i = bin_of(total)
    hist[i] = hist.get(i, 0) + 1
    index = _counts.get(source, 0)
    _counts[source] = index + 1
    if len(_raw) < RAW_PER_FLUSH:
        _raw.append([source, index, a, wait, compute, sync, int(first)])


def note_next(t_enter: float, t_exit: float, *, source: str = "cpuwise.data", stream: int = 0,
              end: bool = False, item: Any = None) -> None:
    """Record one user-facing `__next__` (time.perf_counter() values around it).

    Step i runs from delivery i to delivery i+1; its data-wait is the time inside `__next__`.

    Args:
        source: "cpuwise.data" (the default caller), "dataloader", "watch", or a framework callback
            ("lightning", "hf", "keras").
        stream: an id of the iterator, so steps pair only deliveries of the same iterator.
        end: the call ended the iteration (StopIteration): it closes the last step, opens none.
        item: what `__next__` delivered (the batch), when the caller has it: a trial counts its samples.
    """
    global _sync_s, _coll_s, _last_b, _since
    if PATH is None:
        return
    if _delivery_hook is not None and not end:
        _delivery_hook(t_enter, t_exit, source, item)
    pid = os.getpid()
    if _agg_pid != pid:
        _restart(pid)
    sync, coll, _sync_s, _coll_s = _sync_s, _coll_s, 0.0, 0.0
    key = (source, stream)
    prev = _open.pop(key, None)
    if prev is not None:
        a, b, first = prev
        gap = t_enter - b if t_enter > b else 0.0
        sync = gap if sync > gap else (sync if sync > 0.0 else 0.0)
        _add(source, a, b - a if b > a else 0.0, gap - sync, sync, first, coll if coll < sync else sync)
    if not end:
        _open[key] = (t_enter, t_exit, prev is None)
        if len(_open) > MAX_OPEN_STREAMS:
            del _open[next(iter(_open))]
    if t_exit > _last_b:
        _last_b = t_exit
    if _since is None:
        _since = t_exit
    elif t_exit - _since >= FLUSH_AFTER_S:
        flush()


def timed(iterable: Iterable[T], *, source: str = "cpuwise.data", stream: int | None = None) -> Iterator[T]:
    """Yield from `iterable`, reporting the time inside each `__next__` with `note_next` (and once
    with end=True when it ends). Outside the doctor (ACTIVE false at the start) it only yields.

    Args:
        source: as for `note_next`.
        stream: the id steps are paired by; default: the id of this iteration's iterator.
    """
    it = iter(iterable)
    if not ACTIVE:
        yield from it
        return
    sid = id(it) if stream is None else stream
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            note_next(t0, time.perf_counter(), source=source, stream=sid, end=True)
            return
        note_next(t0, time.perf_counter(), source=source, stream=sid, item=item)
        yield item


def set_delivery_hook(hook: Callable[[float, float, str, Any], None] | None) -> None:
    """Call `hook(t_enter, t_exit, source, item)` on every delivery `note_next` records (None: stop).
    It runs before the step is recorded and may raise (SystemExit ends a trial at a step boundary)."""
    global _delivery_hook
    _delivery_hook = hook


def add_sync(seconds: float, *, collective: bool = False) -> None:
    """Add host-blocked time (on the device, or in a collective waiting for the other ranks when
    `collective`); it is reported with the next `note_next`, as sync."""
    global _sync_s, _coll_s
    _sync_s += seconds
    if collective:
        _coll_s += seconds


def emit(kind: str, payload: dict[str, Any]) -> None:
    """Send one record of `kind` (e.g. "pipeline_stats", "job_info") to the doctor."""
    if PATH is None:
        return
    _write({"k": kind, "p": payload})


def set_path(path: str | None) -> None:
    """Point this process's channel at `path` (None switches it off): `cpuwise.watch` standalone
    collects its own records this way, and tests use it."""
    global PATH, ACTIVE, _fd, _fd_pid, _sync_s, _coll_s
    flush()
    _restart(os.getpid())
    _coll_s = 0.0
    if _fd is not None and _fd_pid == os.getpid():
        try:
            os.close(_fd)
        except OSError:
            pass
    PATH, ACTIVE, _fd, _fd_pid, _sync_s = path, path is not None, None, None, 0.0


