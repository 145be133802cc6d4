"""Pools without worker processes: threads (GIL-releasing work) and inline (cheap functions)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from cpuwise.data._engine.chunk import MapFn, run_chunk
from cpuwise.data._engine.pool import Completed, PoolBase, closed_error
from cpuwise.errors import WorkerError


class ThreadPool(PoolBase[None]):
    """Threads that pull tasks from one queue; resizing adds threads or retires idle ones."""

    backend = "thread"

    def __init__(self, fns: Sequence[MapFn], n: int, name: str = "map") -> None:
        super().__init__(name)
        self.fns = list(fns)
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
        while True:
            task = self._tasks.get()
            if task is None:
                return
            task_id, items, start, epoch = task
            with self._lock:
                if task_id not in self._pending:
                    continue
            c0 = time.thread_time()
            try:
                out, times = run_chunk(self.fns, items, start, epoch)
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: raised by poll()
                with self._lock:
                    if self._fatal is None:
                        self._fatal = exc
                self._results.put(Completed(-1, [], [], 0.0))  # wakes poll()
                continue
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
            self._pending[task_id] = None
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
