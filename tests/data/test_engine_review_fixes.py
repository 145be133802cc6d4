"""Regression tests for engine review fixes: a pool shut down under an iterator, BaseException in
thread workers, partial batches lost to a caught SampleError, and on_error="skip" with crashers."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import pytest

import cpuwise.data as cd
from cpuwise.errors import SampleError, WorkerError


def next_within(it: Any, timeout: float = 5.0) -> Any:
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


def fail_on_5(x: int) -> int:
    if x == 5:
        raise ValueError("bad sample 5")
    return x


def sys_exit_on_3(x: int) -> int:
    if x == 3:
        sys.exit(3)
    return x


def interrupt_on_3(x: int) -> int:
    if x == 3:
        raise KeyboardInterrupt
    return x


def sigkill_some(x: int) -> int:
    if x in (20, 90, 160):
        os.kill(os.getpid(), signal.SIGKILL)
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


def _collect_with_errors(ds: Any) -> list[Any]:
    out: list[Any] = []
    it = iter(ds)
    while True:
        try:
            b = next(it)
        except StopIteration:
            return out
        except SampleError:
            out.append("ERR")
            continue
        out.append([int(v) for v in b])


@pytest.mark.parametrize("prefetch", [False, True])
def test_caught_sample_error_keeps_partial_batch(prefetch: bool) -> None:
    ds = cd.from_sequence(list(range(12))).map(fail_on_5, workers=1, backend="inline").batch(4)
    if prefetch:
        ds = ds.prefetch()
    assert _collect_with_errors(ds) == [[0, 1, 2, 3], "ERR", [4, 6, 7, 8], [9, 10, 11]]
    ds.close()


def test_partial_batch_survives_state_resume() -> None:
    ds = cd.from_sequence(list(range(12))).map(fail_on_5, workers=1, backend="inline").batch(4)
    it = iter(ds)
    assert [int(v) for v in next(it)] == [0, 1, 2, 3]
    with pytest.raises(SampleError):
        next(it)
    state = ds.state_dict()
    rest = [[int(v) for v in b] for b in it]
    assert rest == [[4, 6, 7, 8], [9, 10, 11]]
    ds.load_state_dict(state)
    assert [[int(v) for v in b] for b in ds] == [[4, 6, 7, 8], [9, 10, 11]]
    ds.close()


def test_skip_survives_several_crashing_samples() -> None:
    ds = cd.from_sequence(list(range(200))).map(sigkill_some, workers=2, backend="process",
                                                 on_error="skip")
    assert list(ds) == [i for i in range(200) if i not in (20, 90, 160)]
    ds.close()
