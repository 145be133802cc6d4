"""The contract between the map stage and a worker pool, and the bookkeeping every pool shares.

A pool runs tasks - a chunk of samples with the epoch index of its first sample and the epoch -
through a fused group of map functions, and keeps each result (`Completed`) until the map stage
takes it. The map stage puts chunks back in order, so a pool may finish tasks in any order, be
resized, or lose a worker without changing the output. A cancelled task's result is dropped when it
arrives: the pool forgets the task, never the worker running it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from cpuwise.errors import WorkerError

T = TypeVar("T")

HANG_TIMEOUT_S = 300.0  # a worker with no progress on a task for this long is hung (map(hang_timeout=))


class ProgressWatch:
    """Tells a hung worker from a busy one by its progress slot: (task id, position in the task),
    written by the worker before each sample, task id -1 while it waits for work.

    A worker is hung when it holds a task and the slot has not changed for `timeout` seconds, as
    seen by the pool's polls (the clock runs from the first poll that saw the current value, so
    a consumer that stops pulling for a while never makes an idle worker look hung).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.seen: tuple[int, int] = (-1, 0)
        self.since = time.monotonic()

    def hung(self, task: int, pos: int, now: float) -> bool:
        """Record the slot's value at `now`; True when it shows a task stuck for `timeout` s."""
        if (task, pos) != self.seen:
            self.seen, self.since = (task, pos), now
            return False
        return task >= 0 and now - self.since > self.timeout


class Completed(NamedTuple):
    """One finished task: outputs (or Skipped/Failed markers) in input order, seconds per function."""

    task_id: int
    outputs: list[Any]
    times: list[float]
    cpu_s: float


def closed_error(name: str) -> WorkerError:
    """The error a pool raises when it is used after shutdown (submit() or poll())."""
    return WorkerError(f"map '{name}': the worker pool was shut down (ds.close(), an earlier "
                       "WorkerError, or interpreter exit). Fix: build the pipeline again to start "
                       "new workers.")


class Pool(Protocol):
    """What the map stage needs of a pool (ThreadPool, InlinePool, ProcessPool)."""

    backend: str  # "thread" | "inline" | "process": reported in ds.stats()["config"]

    @property
    def size(self) -> int:
        """The worker count the pool is sized to (resize() applies it between tasks)."""
        ...

    def new_id(self) -> int:
        """A task id unique within this pool."""
        ...

    def submit(self, task_id: int, items: list[Any], start: int, epoch: int) -> None:
        """Run `items` (epoch index `start` onwards, in `epoch`); raises WorkerError once shut down."""
        ...

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` s for results and store them for take(); raises on a fatal error."""
        ...

    def take(self, task_id: int) -> Completed | None:
        """The stored result of `task_id` (removed from the pool), or None while it runs."""
        ...

    def resize(self, n: int) -> None:
        """Change the worker count; tasks already submitted still complete exactly once."""
        ...

    def cancel(self, ids: Iterable[int]) -> None:
        """Forget `ids`: their results are dropped when they arrive."""
        ...

    def drain(self, ids: Iterable[int], timeout: float = 5.0) -> None:
        """Cancel `ids` and wait until no worker still runs one of them."""
        ...

    def pids(self) -> list[int]:
        """Process ids of the workers (empty for pools without processes)."""
        ...

    def shutdown(self) -> None:
        """Stop every worker; later submit() and poll() raise WorkerError."""
        ...


class PoolBase(Generic[T]):
    """Task ids, the submitted tasks still waiting for a result, the results waiting for take(), and
    cancel/drain/pids as a pool without worker processes does them.

    `_pending` maps a task id to what the pool keeps about it (None, or the task for a resend); a
    result whose id is no longer pending belongs to a cancelled task and is dropped.
    """

    backend = "?"

    def __init__(self, name: str) -> None:
        self.name = name
        self._pending: dict[int, T] = {}
        self._done: dict[int, Completed] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()  # iterators of several Datasets may share one pool
        self._closed = False

    def new_id(self) -> int:
        return next(self._ids)

    def take(self, task_id: int) -> Completed | None:
        with self._lock:
            return self._done.pop(task_id, None)

    def cancel(self, ids: Iterable[int]) -> None:
        with self._lock:
            for i in ids:
                self._pending.pop(i, None)
                self._done.pop(i, None)

    def drain(self, ids: Iterable[int], timeout: float = 5.0) -> None:
        self.cancel(ids)  # no worker outside this process: a cancelled task touches nothing later

    def pids(self) -> list[int]:
        return []
