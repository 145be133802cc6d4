"""Worker pools behind map(): threads (GIL-releasing work) and processes (see procpool.py).

Both pools run chunks of samples through a fused group of map functions and report
`Completed(task_id, outputs, seconds_per_fn, cpu_s)`; the map stage puts chunks back in order, so
a pool may finish tasks in any order, be resized, or lose a worker without changing the output.
"""

from __future__ import annotations

import itertools
import pickle
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from cpuwise.data.chunk import MapFn, run_chunk
from cpuwise.errors import WorkerError


def closed_error(name: str) -> WorkerError:
    """The error a pool raises when it is used after shutdown (submit() or poll())."""
    return WorkerError(f"map '{name}': the worker pool was shut down (ds.close(), an earlier "
                       "WorkerError, or interpreter exit). Fix: build the pipeline again to start "
                       "new workers.")


class Completed(NamedTuple):
    task_id: int
    outputs: list[Any]
    times: list[float]
    cpu_s: float


class ThreadPool:
    """Threads that pull tasks from one queue; resizing adds threads or retires idle ones."""

    backend = "thread"

    def __init__(self, fns: Sequence[MapFn], n: int, name: str = "map") -> None:
        self.fns = list(fns)
        self.name = name
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[Completed] = queue.SimpleQueue()
        self._live: set[int] = set()
        self._done: dict[int, Completed] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._target = 0
        self._closed = False
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
                if task_id not in self._live:
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
            self._live.add(task_id)
        self._tasks.put((task_id, items, start, epoch))

    def new_id(self) -> int:
        return next(self._ids)

    def poll(self, timeout: float) -> None:
        self._check()
        try:
            item = self._results.get(timeout=timeout) if timeout > 0 else self._results.get_nowait()
            while True:
                with self._lock:
                    if item.task_id in self._live:
                        self._live.discard(item.task_id)
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

    def take(self, task_id: int) -> Completed | None:
        with self._lock:
            return self._done.pop(task_id, None)

    def cancel(self, ids: Sequence[int]) -> None:
        with self._lock:
            for i in ids:
                self._live.discard(i)
                self._done.pop(i, None)

    def drain(self, ids: Sequence[int], timeout: float = 5.0) -> None:
        self.cancel(ids)

    def pids(self) -> list[int]:
        return []

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._live.clear()
            self._done.clear()
        for _ in self._threads:
            self._tasks.put(None)
        self._threads.clear()


def picklable(fns: Sequence[MapFn]) -> tuple[bytes | None, str]:
    """Pickle the map functions for process workers.

    cloudpickle (when installed) sends lambdas, closures and functions of the main script by
    value and importable functions by reference. Without it, functions of `__main__` cannot reach
    the workers (they do not re-run the user's script), so the caller falls back to threads.
    """
    try:
        import cloudpickle
    except ImportError:
        cloudpickle = None
    if cloudpickle is not None:
        try:
            return cloudpickle.dumps(list(fns), protocol=5), ""
        except Exception as exc:
            return None, f"cloudpickle: {type(exc).__name__}: {exc}"
    mains = [f.name for f in fns if _from_main(f.fn)]
    if mains:
        return None, (f"{', '.join(mains)} is defined in the main script and cloudpickle is not "
                      "installed (pip install cloudpickle)")
    try:
        return pickle.dumps(list(fns), protocol=5), ""
    except Exception as exc:  # lambdas, closures, locally defined classes
        return None, f"{type(exc).__name__}: {exc} (pip install cloudpickle to send it)"


def _from_main(fn: Any) -> bool:
    module = getattr(fn, "__module__", None) or type(fn).__module__
    return module == "__main__" or type(fn).__module__ == "__main__"


class InlinePool:
    """Runs each task at once in the calling thread (workers=0 internally: cheap functions)."""

    backend = "inline"
    size = 0

    def __init__(self, fns: Sequence[MapFn]) -> None:
        self.fns = list(fns)
        self._done: dict[int, Completed] = {}
        self._ids = itertools.count(1)

    def new_id(self) -> int:
        return next(self._ids)

    def submit(self, task_id: int, items: list[Any], start: int, epoch: int) -> None:
        c0 = time.thread_time()
        out, times = run_chunk(self.fns, items, start, epoch)
        self._done[task_id] = Completed(task_id, out, times, time.thread_time() - c0)

    def poll(self, timeout: float) -> None:
        pass

    def take(self, task_id: int) -> Completed | None:
        return self._done.pop(task_id, None)

    def resize(self, n: int) -> None:
        pass

    def cancel(self, ids: Sequence[int]) -> None:
        for i in ids:
            self._done.pop(i, None)

    def drain(self, ids: Sequence[int], timeout: float = 5.0) -> None:
        self.cancel(ids)

    def pids(self) -> list[int]:
        return []

    def shutdown(self) -> None:
        self._done.clear()
