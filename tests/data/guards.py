"""Helpers for tests of failure modes: turn a hang into a failure, release FIFOs, find leftovers.

`within` is a hang guard, not a timing assertion: its limit is minutes, far above any slow machine,
and a test that passes never waits for it.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psutil

from cpuwise.data._engine import shm

T = TypeVar("T")
# What counts as a hang: far longer than any of these tests takes on a loaded machine (lower it to see
# a test fail quickly at a commit before its fix).
HANG_S = float(os.environ.get("CPUWISE_TEST_HANG_S", "120"))


def within(fn: Callable[[], T], what: str, timeout: float = HANG_S) -> T:
    """fn() in a helper thread; its result or exception, or an AssertionError if it hangs."""
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box.append((False, exc))

    t = threading.Thread(target=run, daemon=True, name="hang-guard")
    t.start()
    t.join(timeout)
    assert box, f"{what} did not finish: it hangs"
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def release_fifo(path: str) -> None:
    """Unblock any reader stuck opening `path` (a FIFO): open it for writing and close it at once."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:  # ENXIO: nobody is reading it
        if exc.errno not in (errno.ENXIO, errno.ENOENT):
            raise
        return
    os.close(fd)


def my_segments(pid: int | None = None) -> list[str]:
    """Shared-memory segments that cpuwise pools of process `pid` (default: this one) left."""
    return shm.leftovers(f"{shm.PREFIX}{os.getpid() if pid is None else pid}-")


def all_gone(pids: list[int], timeout: float = 30.0) -> bool:
    """True once none of `pids` is a live process (zombies count as gone); waits up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if psutil.pid_exists(p) and _not_zombie(p)]
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
