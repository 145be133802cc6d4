"""Which pool runs a map group: processes when its functions can be sent to them, else threads."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from typing import Any

from cpuwise.data._engine.chunk import MapFn, ResultPolicy
from cpuwise.data._engine.pool import HANG_TIMEOUT_S, Pool
from cpuwise.data._engine.threads import InlinePool, ThreadPool
from cpuwise.errors import ConfigError

log = logging.getLogger("cpuwise.data")


def start_pool(backend: str, fns: Sequence[MapFn], n: int, name: str,
               hang_timeout: float = HANG_TIMEOUT_S) -> Pool:
    """A new pool of `n` workers running the fused group `fns`.

    Args:
        backend: "inline", "thread", "process", or "auto" (processes when the functions pickle, else
            threads, with a log line saying why).
        name: the group's name in thread names and error messages.
        hang_timeout: seconds without progress on a sample after which a worker is hung (see pool.py).
    """
    if backend == "inline":
        return InlinePool(fns, name)
    if backend == "thread":
        return ThreadPool(fns, n, name, hang_timeout)
    blob, why = picklable(fns)
    if blob is None and backend == "process":
        raise ConfigError(
            f"map({name}): backend='process' needs a picklable function, found one that is not "
            f"({why}). Fix: define it at module level (not a lambda or closure), install "
            "cloudpickle, or use backend='thread'."
        )
    if blob is None:
        log.info("cpuwise.data: map(%s) uses threads: the function cannot be sent to worker "
                 "processes (%s)", name, why)
        return ThreadPool(fns, n, name, hang_timeout)
    # lazy: the process pool registers an exit hook and loads multiprocessing's forkserver machinery,
    # which a pipeline without process workers never needs
    from cpuwise.data._engine.processes import ProcessPool

    return ProcessPool(blob, n, name, skip_crashers=all(f.on_error == "skip" for f in fns),
                       results=ResultPolicy.of(list(fns)), hang_timeout=hang_timeout)


def picklable(fns: Sequence[MapFn]) -> tuple[bytes | None, str]:
    """Pickle the map functions for process workers.

    cloudpickle (when installed) sends lambdas, closures and functions of the main script by
    value and importable functions by reference. Without it, functions of `__main__` cannot reach
    the workers (they do not re-run the user's script), so the caller falls back to threads.
    """
    try:
        import cloudpickle  # lazy: optional, and looked up at each call (tests hide it)
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
