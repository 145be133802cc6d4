"""Pool errors reach the consumer and never hang it: a pool shut down under an iterator, and a
BaseException (sys.exit, Ctrl-C) raised by a map function in a worker thread."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
from guards import HANG_S

import cpuwise.data as cd
from cpuwise.errors import WorkerError


def next_within(it: Any, timeout: float = HANG_S) -> Any:
    """next(it) in a helper thread: returns ("ok", value) or ("err", exc); fails on a hang."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(("ok", next(it)))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            box.append(("err", exc))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert box, f"next() did not return within {timeout} s (hang)"
    return box[0]


def slow(x: int) -> int:
    time.sleep(0.01)
    return x


def sys_exit_on_3(x: int) -> int:
    if x == 3:
        sys.exit(3)
    return x


def interrupt_on_3(x: int) -> int:
    if x == 3:
        raise KeyboardInterrupt
    return x


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_iterator_raises_when_its_pool_is_shut_down(backend: str) -> None:
    base = cd.from_sequence(list(range(1000))).map(slow, workers=2, backend=backend)
    it = iter(base.batch(4).prefetch())
    next(it)
    base.close()
    kind, val = next_within(it)
    # items may still be buffered: keep pulling until the error shows (never a hang)
    for _ in range(40):
        if kind == "err":
            break
        kind, val = next_within(it)
    assert kind == "err" and isinstance(val, WorkerError), val
    assert "shut down" in str(val)


def test_thread_backend_sys_exit_raises_worker_error() -> None:
    ds = cd.from_sequence(list(range(20))).map(sys_exit_on_3, workers=2, backend="thread")
    it = iter(ds)
    seen = []
    for _ in range(30):
        kind, val = next_within(it)
        if kind == "err":
            break
        seen.append(val)
    assert kind == "err" and isinstance(val, WorkerError), val
    assert "SystemExit" in str(val)
    ds.close()


def test_thread_backend_keyboard_interrupt_reaches_consumer() -> None:
    ds = cd.from_sequence(list(range(20))).map(interrupt_on_3, workers=2, backend="thread")
    it = iter(ds)
    for _ in range(30):
        kind, val = next_within(it)
        if kind == "err":
            break
    assert kind == "err" and isinstance(val, KeyboardInterrupt), val
    ds.close()
