"""Pools without worker processes: threads (GIL-releasing work) and inline (cheap functions).

A worker thread that makes no progress on a sample for `hang_timeout` seconds cannot be stopped (a
process can): the pool names the sample in a WorkerError instead of waiting forever.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from cpuwise.data._engine.chunk import MapFn, run_chunk
from cpuwise.data._engine.pool import HANG_TIMEOUT_S, Completed, PoolBase, ProgressWatch, closed_error
from cpuwise.data._naming import sample_name
from cpuwise.errors import WorkerError


class ThreadPool(PoolBase[list[Any]]):
    """Threads that pull tasks from one queue; resizing adds threads or retires idle ones."""

    backend = "thread"

    def __init__(self, fns: Sequence[MapFn], n: int, name: str = "map",
                 hang_timeout: float = HANG_TIMEOUT_S) -> None:
        super().__init__(name)
        self.fns = list(fns)
        self.hang_timeout = hang_timeout
        self._progress: dict[int, tuple[list[int], ProgressWatch]] = {}  # thread ident -> slot, watch
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[Completed] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._target = 0
        self._fatal: BaseException | None = None  # a BaseException a map function raised
        self.resize(n)

    @property
    def size(self) -> int:
        return self._target

    def _run(self) -> None:
        slot = [-1, 0]  # (task id, position): run_chunk writes the position before each sample
        with self._lock:
            self._progress[threading.get_ident()] = (slot, ProgressWatch(self.hang_timeout))
        try:
            self._serve(slot)
        finally:
            with self._lock:
                self._progress.pop(threading.get_ident(), None)

    def _serve(self, slot: list[int]) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            task_id, items, start, epoch = task
            with self._lock:
                if task_id not in self._pending:
                    continue
            c0 = time.thread_time()
            slot[1], slot[0] = 0, task_id
            try:
                out, times = run_chunk(self.fns, items, start, epoch, progress=slot)
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: raised by poll()
                with self._lock:
                    if self._fatal is None:
                        self._fatal = exc
                self._results.put(Completed(-1, [], [], 0.0))  # wakes poll()
                continue
            finally:
                slot[0] = -1
            self._results.put(Completed(task_id, out, times, time.thread_time() - c0))

    def resize(self, n: int) -> None:
        if self._closed:
            return
        while len(self._threads) < n:
            t = threading.Thread(target=self._run, name=f"cpuwise-{self.name}-{len(self._threads)}",
                                 daemon=True)
            t.start()
            self._threads.append(t)
        while len(self._threads) > n:
            self._tasks.put(None)  # the next idle thread takes it and exits
            self._threads.pop()
        self._target = n

    def submit(self, task_id: int, items: list[Any], start: int, epoch: int) -> None:
        with self._lock:
            if self._closed:
                raise closed_error(self.name)
            self._pending[task_id] = items  # kept to name a sample a thread hangs on
        self._tasks.put((task_id, items, start, epoch))

    def poll(self, timeout: float) -> None:
        self._check()
        try:
            item = self._results.get(timeout=timeout) if timeout > 0 else self._results.get_nowait()
            while True:
                with self._lock:
                    if item.task_id in self._pending:
                        del self._pending[item.task_id]
                        self._done[item.task_id] = item
                item = self._results.get_nowait()
        except queue.Empty:
            pass
        self._check()
        self._check_hangs()

    def _check_hangs(self) -> None:
        """WorkerError naming the sample when a thread made no progress on it for hang_timeout s."""
        now = time.monotonic()
        with self._lock:
            stuck = [slot for slot, watch in self._progress.values() if watch.hung(slot[0], slot[1], now)]
            items = self._pending.get(stuck[0][0]) if stuck else None
        if not stuck:
            return
        pos = stuck[0][1]
        name = sample_name(items[pos]) if items is not None and 0 <= pos < len(items) else "?"
        self.shutdown()
        raise WorkerError(
            f"map '{self.name}': a worker thread made no progress for {self.hang_timeout:g} s on sample "
            f"{name!r} (hang_timeout); expected map functions to return or raise, and a thread cannot be "
            "stopped. Fix: repair or remove the sample, use backend='process' (a hung worker process is "
            "killed and restarted, and on_error='skip' skips a sample that hangs twice), or pass "
            "map(..., hang_timeout=...) if it is only slow."
        )

    def _check(self) -> None:
        """Raise when the pool is closed or a map function raised a BaseException (which would
        otherwise leave its chunk unfinished forever)."""
        with self._lock:
            exc, closed = self._fatal, self._closed
            self._fatal = None
        if exc is not None:
            self.shutdown()
            if isinstance(exc, KeyboardInterrupt):
                raise exc
            raise WorkerError(
                f"map '{self.name}': the map function raised {type(exc).__name__}: {exc} in a worker "
                "thread; expected it to return or raise an Exception. Fix: raise an Exception "
                "subclass instead (not sys.exit() or another BaseException) in the map function."
            ) from exc
        if closed:
            raise closed_error(self.name)

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._pending.clear()
            self._done.clear()
        for _ in self._threads:
            self._tasks.put(None)
        self._threads.clear()


class InlinePool(PoolBase[None]):
    """Runs each task at once in the calling thread (workers=0 internally: cheap functions)."""

    backend = "inline"
    size = 0

    def __init__(self, fns: Sequence[MapFn], name: str = "map") -> None:
        super().__init__(name)
        self.fns = list(fns)

    def submit(self, task_id: int, items: list[Any], start: int, epoch: int) -> None:
        c0 = time.thread_time()
        out, times = run_chunk(self.fns, items, start, epoch)
        self._done[task_id] = Completed(task_id, out, times, time.thread_time() - c0)

    def poll(self, timeout: float) -> None:
        pass

    def resize(self, n: int) -> None:
        pass

    def shutdown(self) -> None:
        self._done.clear()
