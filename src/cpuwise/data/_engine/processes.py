"""A pool of worker processes with one pipe each, so the parent knows what every worker holds.

Processes start with the 'forkserver' method: forking a parent that already runs OpenMP/BLAS
thread pools can deadlock the child, and forkserver children start far faster than 'spawn' ones.
Tasks and results travel as shm messages (arrays in shared memory, not pickled).

A worker that dies (SIGKILL from the OOM killer, a segfault in a native decoder) is replaced and its
tasks are sent again; a shared progress slot tells which sample it was running. A worker that is
alive but makes no progress on a task for `hang_timeout` seconds (a read that never returns, a
deadlock in a native library) is hung: it is named with its sample in a warning, killed, and handled
like a death. A sample that kills or hangs two workers is skipped (on_error="skip") or raises
WorkerError naming it; workers that keep dying raise WorkerError within seconds. Nothing ever waits
on a dead or hung process.
"""

from __future__ import annotations

import atexit
import io
import logging
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import secrets
import time
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing import context as mpctx
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from typing import Any

from cpuwise.data._engine import shm
from cpuwise.data._engine.chunk import ResultPolicy, unseal
from cpuwise.data._engine.pool import HANG_TIMEOUT_S, Completed, PoolBase, ProgressWatch, closed_error
from cpuwise.data._engine.worker_main import worker_main
from cpuwise.data._naming import sample_name
from cpuwise.errors import WorkerError

log = logging.getLogger("cpuwise.data")

_CTX: Any = None
_LIVE: weakref.WeakSet[ProcessPool] = weakref.WeakSet()
_EXITING = False


def _at_exit() -> None:
    """Stop every pool before multiprocessing's own exit hook terminates workers (atexit runs
    last-registered first), so no pool mistakes that for a crash and restarts workers."""
    global _EXITING
    _EXITING = True
    for pool in list(_LIVE):
        try:
            pool.shutdown()
        except Exception:
            pass


atexit.register(_at_exit)
MAX_DEATHS = 4  # worker deaths within DEATH_WINDOW_S before the pool gives up
DEATH_WINDOW_S = 60.0


def context() -> Any:
    global _CTX
    if _CTX is None:
        ctx = mp.get_context("forkserver")
        try:  # preload our worker module (and numpy) once in the server: faster worker starts
            ctx.set_forkserver_preload(["cpuwise.data._engine.worker_main"])
        except Exception:
            pass
        _CTX = ctx
    return _CTX


# ForkServerProcess whose children do not re-import the parent's __main__.
#
# Workers only run cpuwise.data._engine.worker_main and the pickled map functions (functions of
# __main__ travel by value via cloudpickle), so re-running the user's script in every worker - which
# breaks scripts without an `if __name__ == "__main__":` guard, and stdin/REPL sessions - buys nothing.
# _launch mirrors popen_forkserver.Popen._launch (unchanged since Python 3.8) minus the main keys.
class _Popen(popen_forkserver.Popen):  # type: ignore[misc]
    def _launch(self, process_obj: Any) -> None:
        prep = spawn.get_preparation_data(process_obj._name)
        prep.pop("init_main_from_path", None)
        prep.pop("init_main_from_name", None)
        buf = io.BytesIO()
        mpctx.set_spawning_popen(self)
        try:
            reduction.dump(prep, buf)
            reduction.dump(process_obj, buf)
        finally:
            mpctx.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds,  # type: ignore[attr-defined]
                                       (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Process(mpctx.ForkServerProcess):  # type: ignore[misc, name-defined]
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _Popen(process_obj)


@dataclass
class _Task:
    items: list[Any]
    start: int
    epoch: int
    seal: bool = False  # its results could not be rebuilt here: the worker pickles each on its own
    crashed: dict[int, str] = field(default_factory=dict)  # position -> why it is skipped
    kills: dict[int, int] = field(default_factory=dict)
    first_death: dict[int, float] = field(default_factory=dict)  # position -> its first kill time


@dataclass(eq=False)
class _Worker:
    wid: int
    proc: Any
    conn: Any
    progress: Any
    slots: shm.SlotReader = field(default_factory=shm.SlotReader)
    inflight: deque[int] = field(default_factory=deque)
    retiring: bool = False
    watch: ProgressWatch = field(default_factory=lambda: ProgressWatch(HANG_TIMEOUT_S))


class ProcessPool(PoolBase[_Task]):
    """Worker processes, each with its own pipe and in-flight list; see the module docstring."""

    backend = "process"

    def __init__(self, fns_blob: bytes, n: int, name: str = "map", skip_crashers: bool = False,
                 results: ResultPolicy | None = None, hang_timeout: float = HANG_TIMEOUT_S) -> None:
        super().__init__(name)
        self.fns_blob, self.skip_crashers, self.hang_timeout = fns_blob, skip_crashers, hang_timeout
        self.results = results or ResultPolicy(0, skip_crashers)
        self.prefix = f"{shm.PREFIX}{os.getpid()}-{secrets.token_hex(3)}-"
        self._workers: list[_Worker] = []
        self._stopping: list[_Worker] = []
        self._deaths: deque[float] = deque()
        self._next_wid = 0
        self._seq = 0
        self._target = 0
        self.restarts = 0
        self.hangs = 0
        shm.sweep_stale()  # segments of cpuwise runs that were SIGKILLed wholesale
        _LIVE.add(self)
        self.resize(n)

    # --- sizing ---------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._target

    def _start_worker(self) -> _Worker:
        ctx = context()
        wid = self._next_wid
        self._next_wid += 1
        parent, child = ctx.Pipe(duplex=True)
        progress = ctx.RawArray("q", 2)
        progress[0] = -1
        proc = _Process(target=worker_main, name=f"cpuwise-{self.name}-{wid}", daemon=True,
                   args=(child, self.fns_blob, progress, f"{self.prefix}w{wid}-", os.getpid()))
        proc.start()
        child.close()
        w = _Worker(wid, proc, parent, progress, watch=ProgressWatch(self.hang_timeout))
        self._workers.append(w)
        return w

    def resize(self, n: int) -> None:
        with self._lock:
            self._resize(n)

    def _resize(self, n: int) -> None:
        if self._closed:
            return
        self._target = n
        active = [w for w in self._workers if not w.retiring]
        for w in self._workers:  # un-retire before starting new processes
            if w.retiring and len(active) < n:
                w.retiring = False
                active.append(w)
        while len(active) < n:
            active.append(self._start_worker())
        for w in sorted(active, key=lambda w: len(w.inflight))[: max(0, len(active) - n)]:
            w.retiring = True
        self._retire_idle()

    def _retire_idle(self) -> None:
        for w in [w for w in self._workers if w.retiring and not w.inflight]:
            self._workers.remove(w)
            try:
                w.conn.send(None)
            except OSError:
                pass
            self._stopping.append(w)
        for w in list(self._stopping):
            if not w.proc.is_alive():
                w.proc.join(0)
                w.conn.close()
                w.slots.close()
                self._stopping.remove(w)

    # --- tasks ----------------------------------------------------------------------------------
    def submit(self, task_id: int, items: list[Any], start: int, epoch: int) -> None:
        with self._lock:
            if self._closed:
                raise closed_error(self.name)
            self._pending[task_id] = _Task(items, start, epoch)
            self._send(task_id)

    def _send(self, task_id: int) -> None:
        task = self._pending[task_id]
        candidates = [w for w in self._workers if not w.retiring]
        if not candidates:
            candidates = [self._start_worker()]
        w = min(candidates, key=lambda w: len(w.inflight))
        self._seq += 1
        packed = shm.pack(task.items, f"{self.prefix}m{self._seq}")
        w.inflight.append(task_id)
        freed = w.slots.collect_free(set())
        try:
            w.conn.send((task_id, packed, task.start, task.epoch, dict(task.crashed), freed, task.seal))
        except OSError:
            shm.discard(packed)  # the worker is dead; poll() notices and re-sends its tasks

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` for results (stored for take()) and handle dead workers.

        Raises WorkerError once the pool is shut down: its tasks will never complete."""
        with self._lock:
            if self._closed:
                raise closed_error(self.name)
        try:
            self._poll(timeout)
        except (OSError, ValueError):
            if self._closed:  # shut down by another thread while waiting on its pipes
                raise closed_error(self.name) from None
            raise

    def _poll(self, timeout: float) -> None:
        with self._lock:
            by_obj: dict[Any, _Worker] = {}
            for w in self._workers:
                by_obj[w.conn] = w
                by_obj[w.proc.sentinel] = w
        if not by_obj:
            return
        ready = mpc.wait(list(by_obj), timeout)
        with self._lock:
            self._handle(ready, by_obj)

    def _handle(self, ready: list[Any], by_obj: dict[Any, _Worker]) -> None:
        out: list[Completed] = []
        dead: list[_Worker] = []
        for obj in ready:
            w = by_obj[obj]
            if obj is w.conn:
                try:
                    if not w.conn.closed and w.conn.poll(0):  # another thread may have read it
                        self._receive(w, out)
                except (EOFError, OSError):
                    dead.append(w)
            else:
                dead.append(w)
        for w in dict.fromkeys(dead):
            self._on_death(w, out)
        now = time.monotonic()
        for w in [w for w in self._workers if w.inflight and w.watch.hung(int(w.progress[0]),
                                                                          int(w.progress[1]), now)]:
            self._on_hang(w, out)
        self._retire_idle()
        for c in out:
            self._done[c.task_id] = c

    def _receive(self, w: _Worker, out: list[Completed]) -> None:
        if w.conn.closed:
            return
        msg = w.conn.recv()
        if msg[0] == "fatal":
            self.shutdown()
            raise WorkerError(
                f"map '{self.name}': a worker process could not run the map function:\n{msg[1]}\n"
                "Fix: make the function importable by the worker (define it at module level in an "
                "importable module), or use backend='thread'."
            )
        task_id, packed, times, cpu = msg
        if task_id in w.inflight:
            w.inflight.remove(task_id)
        try:
            result = w.slots.read(packed)  # also for cancelled tasks: the slot must be registered
        except Exception as exc:  # a result that pickled in the worker but cannot be rebuilt here
            task = self._pending.get(task_id)
            if task is None:
                return
            if task.seal:  # sealed outputs are bytes: this is not about one result
                raise
            log.info("cpuwise.data: map '%s': a result could not be rebuilt (%s: %s); running its chunk "
                     "again with each result sent on its own", self.name, type(exc).__name__, exc)
            task.seal = True
            self._send(task_id)
            return
        task = self._pending.pop(task_id, None)
        if task is None:
            return  # cancelled while it ran; dropping `result` frees its slot
        if task.seal:
            result = unseal(self.results, task.items, result)
        out.append(Completed(task_id, result, times, cpu))

    def _on_hang(self, w: _Worker, out: list[Completed]) -> None:
        """A worker alive but stuck on one sample: say which, then kill it and recover as from a death."""
        task_id, pos = w.watch.seen
        task = self._pending.get(task_id)
        name = sample_name(task.items[pos]) if task is not None and 0 <= pos < len(task.items) else "?"
        hung = f"no progress for {self.hang_timeout:g} s on sample {name!r}: hung"
        log.warning("cpuwise.data: map '%s' worker %d made %s; killing it (hang_timeout=%g s)", self.name,
                    w.proc.pid, hung, self.hang_timeout)
        self.hangs += 1
        w.proc.kill()
        self._on_death(w, out, hung)

    def _on_death(self, w: _Worker, out: list[Completed], hung: str | None = None) -> None:
        while True:  # results it finished before dying are still good
            try:
                if not w.conn.poll(0):
                    break
                self._receive(w, out)
            except (EOFError, OSError):
                break
        if w not in self._workers or self._closed or _EXITING:
            return
        self._workers.remove(w)
        w.proc.join(1.0)
        code = w.proc.exitcode
        w.conn.close()
        w.slots.close()
        shm.sweep(f"{self.prefix}w{w.wid}-")  # slots it created that we never opened
        now = time.monotonic()
        pending = [t for t in w.inflight if t in self._pending]
        why = f"exit code {code}" + (" (SIGKILL: often the out-of-memory killer)" if code == -9 else "")
        why = hung or why
        handled = False
        if pending and w.progress[0] == pending[0]:
            handled = self._blame(pending[0], int(w.progress[1]), why, now, hung is not None)
        if not handled:  # deaths of a sample skipped by on_error="skip" do not count
            self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - DEATH_WINDOW_S:
            self._deaths.popleft()
        if len(self._deaths) > MAX_DEATHS:
            self.shutdown()
            raise WorkerError(
                f"map '{self.name}': {len(self._deaths)} worker processes died within "
                f"{DEATH_WINDOW_S:.0f} s (last: {why}); expected workers to stay up. Fix: lower "
                "workers= or the memory each sample needs, or use backend='thread'."
            )
        log.warning("cpuwise.data: map '%s' worker %d died (%s); restarting it and re-running %d "
                    "task(s)", self.name, w.proc.pid, why, len(pending))
        self.restarts += 1
        if not w.retiring or pending:
            n_active = sum(1 for x in self._workers if not x.retiring)
            if n_active < self._target:
                self._start_worker()
        for task_id in pending:
            self._send(task_id)

    def _blame(self, task_id: int, pos: int, why: str, now: float, hung: bool = False) -> bool:
        """Count a worker death (or hang) against the sample it was running. Returns True when the
        death is handled by the per-sample policy (the sample killed or hung two workers and is
        skipped): then neither of its deaths counts toward MAX_DEATHS."""
        task = self._pending[task_id]
        task.kills[pos] = task.kills.get(pos, 0) + 1
        if task.kills[pos] < 2 or pos >= len(task.items):
            task.first_death.setdefault(pos, now)
            return False
        name = sample_name(task.items[pos])
        if self.skip_crashers:
            task.crashed[pos] = (f"it hung its worker process twice ({why})" if hung
                                 else "it killed its worker process twice")
            first = task.first_death.pop(pos, None)
            if first is not None:
                try:
                    self._deaths.remove(first)
                except ValueError:  # already out of the window
                    pass
            return True
        self.shutdown()
        if hung:
            raise WorkerError(
                f"map '{self.name}': sample {name!r} hung a worker process twice (no progress for "
                f"{self.hang_timeout:g} s); expected map functions to return or raise within "
                "hang_timeout. Fix: remove or repair the sample, pass map(..., hang_timeout=...) if it "
                "is only slow, or on_error='skip' to skip samples that hang or crash their worker."
            )
        raise WorkerError(
            f"map '{self.name}': sample {name!r} killed a worker process twice ({why}); expected "
            "map functions to return or raise. Fix: remove or repair the sample, or pass "
            "on_error='skip' to skip samples that crash their worker."
        )

    def drain(self, ids: Iterable[int], timeout: float = 5.0) -> None:
        """Cancel `ids` and wait until no worker still runs one of them; a worker that does not
        finish in time is killed (and replaced when needed)."""
        wanted = set(ids)
        self.cancel(wanted)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = [w for w in self._workers if wanted.intersection(w.inflight)]
            if not busy or self._closed:
                return
            self._poll(0.05)
        with self._lock:
            for w in [w for w in self._workers if wanted.intersection(w.inflight)]:
                w.proc.kill()
                self._on_death(w, [])

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc.pid is not None]

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        self._done.clear()
        workers = self._workers + self._stopping
        self._workers, self._stopping = [], []
        for w in workers:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 2.0
        for w in workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(1.0)
            try:
                w.conn.close()
            except OSError:
                pass
            w.slots.close()
        shm.sweep(self.prefix)
