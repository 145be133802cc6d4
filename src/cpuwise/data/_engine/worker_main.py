"""The main loop of a worker process (imported by the forkserver, so keep it light).

A worker caps its own native thread pools to one thread (BLAS/OpenMP through threadpoolctl, OpenCV,
torch) so N workers use N cores, not N x cores; it re-applies the caps whenever a task imported new
modules (a transform that imports cv2 on first use). It ignores SIGINT (the parent handles Ctrl-C
and shuts the pool down) and exits when the parent goes away (its pipe reaches EOF, or a watch
thread sees the pipeline's process end while a map function blocks), removing the shared-memory
segments it created.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from typing import Any

from cpuwise import _channel
from cpuwise.data._engine import shm
from cpuwise.data._engine.chunk import ResultPolicy, run_chunk, sendable

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


def cap_threads() -> dict[str, Any]:
    """Limit every loaded native thread pool to one thread; returns what was capped."""
    capped: dict[str, Any] = {}
    try:
        from threadpoolctl import threadpool_limits  # lazy: a worker without it keeps going (except below)

        threadpool_limits(1)
        capped["threadpoolctl"] = 1
    except Exception:  # threadpoolctl missing or a library refused: keep going with what worked
        pass
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        try:
            cv2.setNumThreads(1)
            capped["cv2"] = 1
        except Exception:
            pass
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        try:
            torch.set_num_threads(1)
            capped["torch"] = 1
        except Exception:
            pass
    return capped


def _tell_doctor(capped: dict[str, Any]) -> None:
    """Under `cpuwise doctor`: say this process is a data worker and which thread pools it runs."""
    if not _channel.ACTIVE:
        return
    from threadpoolctl import threadpool_info  # lazy: only under `cpuwise doctor`

    native = [{"library": p.get("internal_api"), "api": p.get("user_api"), "threads": p.get("num_threads")}
              for p in threadpool_info()]
    _channel.emit("thread_pools", {"role": "worker", "torch_intra": capped.get("torch"),
                                   "torch_interop": None, "native": native})
    _channel.flush()


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _exit_with(owner: int, prefix: str) -> None:
    """End this worker as soon as process `owner` (the pipeline's) exits, however it ends.

    The worker's parent is the forkserver, not the pipeline's process, and a worker blocked inside a
    map function (a read that never returns) does not see its pipe close; this thread does, through
    a pidfd (Linux) or by polling. It removes the worker's segments and kills the worker.
    """
    try:
        fd = os.pidfd_open(owner)
    except ProcessLookupError:
        fd = -2  # already gone
    except (AttributeError, OSError):  # no pidfd here (old kernel, macOS): poll
        fd = -1
    if fd >= 0:
        watch = select.poll()
        watch.register(fd, select.POLLIN)
        while not watch.poll():  # readable once the process has exited
            pass
    elif fd == -1:
        while _alive(owner):
            time.sleep(0.5)
    shm.sweep(prefix)
    os.kill(os.getpid(), signal.SIGKILL)  # the main thread may be stuck in native code: no unwinding


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def worker_main(conn: Any, fns_blob: bytes, progress: Any, prefix: str, owner: int | None = None) -> None:
    """Serve tasks from `conn` until told to stop (None) or the parent goes away.

    `owner` is the pid of the pipeline's process: the worker ends when it does (see _exit_with).
    """
    if owner is not None:
        threading.Thread(target=_exit_with, args=(owner, prefix), name="cpuwise-owner-watch",
                         daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)  # terminate() -> unwind, so `finally` sweeps
    for var in _THREAD_ENV:
        os.environ[var] = "1"
    slots = shm.SlotWriter(prefix)
    try:
        try:
            fns = pickle.loads(fns_blob)
        except Exception:
            conn.send(("fatal", traceback.format_exc()))
            return
        policy = ResultPolicy.of(fns)
        capped = cap_threads()
        _tell_doctor(capped)
        n_modules = len(sys.modules)
        while True:
            msg = conn.recv()
            if msg is None:
                break
            task_id, packed_items, start, epoch, crashed, freed, seal = msg
            slots.release(freed)
            progress[0] = task_id
            progress[1] = 0
            items = shm.unpack(packed_items)
            c0 = time.process_time()
            out, times = run_chunk(fns, items, start, epoch, crashed, progress)
            cpu = time.process_time() - c0
            if seal:  # its results could not be rebuilt in the parent: each travels on its own
                out = sendable(policy, items, out, seal=True)
            try:
                packed = slots.write(out)
            except Exception:  # one result does not pickle: it alone becomes a marker
                packed = slots.write(sendable(policy, items, out))
            del out, items
            progress[0] = -1
            conn.send((task_id, packed, times, cpu))
            if len(sys.modules) != n_modules:
                cap_threads()
                n_modules = len(sys.modules)
    except (EOFError, BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass  # the parent went away or is shutting down
    except Exception:
        try:
            conn.send(("fatal", traceback.format_exc()))
        except OSError:
            pass
    finally:
        slots.close()
        shm.sweep(prefix)
