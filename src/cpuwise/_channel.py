"""The cheap channel through which an instrumented job reports to `cpuwise doctor`.

The doctor sets the environment variable CPUWISE_CHANNEL to a file path; every process of the job
(main and DataLoader workers) appends one JSON object per line to it with `os.write` on an O_APPEND
descriptor, so lines from several processes never interleave. `note_next` records (one per step, or
per item for an unbatched pipeline) are buffered for at most 0.1 s / 64 records and written in one
call (measured ~2 us each instead of ~8); everything else is written at once, after the buffered records.

Callers (cpuwise.data iterators, the DataLoader instrumentation, `cpuwise.watch`) check `ACTIVE`
first so the channel costs nothing outside the doctor:

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
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

ENV_VAR = "CPUWISE_CHANNEL"

PATH: str | None = os.environ.get(ENV_VAR) or None
ACTIVE: bool = PATH is not None

_fd: int | None = None
_fd_pid: int | None = None
_sync_s: float = 0.0  # host-device sync time since the last note_next, in this process
_buf: list[str] = []  # formatted `next` lines not yet written
_buf_pid: int | None = None
_buf_since = 0.0
_atexit_registered = False
FLUSH_AFTER_S = 0.1
FLUSH_AFTER_N = 64
_SOURCES: dict[str, str] = {}  # source -> its JSON string, so formatting a record is one f-string


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


def flush() -> None:
    """Write the buffered `next` records now (called at exit, on emit and when switching path)."""
    global _buf
    if _buf and _buf_pid == os.getpid():
        text, _buf = "".join(_buf), []
        _write_text(text)
    else:
        _buf = []  # a forked child's copy of its parent's buffer: the parent writes those


def note_next(t_enter: float, t_exit: float, *, source: str = "cpuwise.data", stream: int = 0,
              end: bool = False) -> None:
    """Record one user-facing `__next__` (time.perf_counter() values around it).

    Step i runs from delivery i to delivery i+1; its data-wait is the time inside `__next__`.

    Args:
        source: "cpuwise.data" (the default caller), "dataloader" or "watch".
        stream: an id of the iterator, so steps pair only deliveries of the same iterator.
        end: the call ended the iteration (StopIteration): it closes the last step, opens none.
    """
    global _sync_s, _buf_pid, _buf_since, _atexit_registered
    if PATH is None:
        return
    sync, _sync_s = _sync_s, 0.0
    pid = os.getpid()
    if _buf_pid != pid:
        flush()  # drops a buffer inherited through fork
        _buf_pid = pid
    if not _atexit_registered:
        atexit.register(flush)
        _atexit_registered = True
    src = _SOURCES.get(source)
    if src is None:
        src = _SOURCES[source] = json.dumps(str(source))
    now = time.perf_counter()
    if not _buf:
        _buf_since = now
    _buf.append(f'{{"k":"next","a":{float(t_enter)!r},"b":{float(t_exit)!r},"src":{src},"it":{int(stream)},'
                f'"end":{"true" if end else "false"},"sync":{float(sync)!r},"pid":{pid}}}\n')
    if end or len(_buf) >= FLUSH_AFTER_N or now - _buf_since >= FLUSH_AFTER_S:
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
        note_next(t0, time.perf_counter(), source=source, stream=sid)
        yield item


def add_sync(seconds: float) -> None:
    """Add host-blocked-on-device time; it is reported with the next `note_next`."""
    global _sync_s
    _sync_s += seconds


def emit(kind: str, payload: dict[str, Any]) -> None:
    """Send one record of `kind` (e.g. "pipeline_stats", "job_info") to the doctor."""
    if PATH is None:
        return
    _write({"k": kind, "p": payload})


def set_path(path: str | None) -> None:
    """Point this process's channel at `path` (None switches it off): `cpuwise.watch` standalone
    collects its own records this way, and tests use it."""
    global PATH, ACTIVE, _fd, _fd_pid, _sync_s
    flush()
    if _fd is not None and _fd_pid == os.getpid():
        try:
            os.close(_fd)
        except OSError:
            pass
    PATH, ACTIVE, _fd, _fd_pid, _sync_s = path, path is not None, None, None, 0.0


