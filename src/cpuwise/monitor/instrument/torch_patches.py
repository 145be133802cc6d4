"""Patch torch so each DataLoader step, its settings, each process's thread pools, host-device syncs,
collectives (timed as sync), ranks and rank crashes reach the doctor through the channel. Called after
`import torch` finished; idempotent."""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import sys
import time
from typing import Any, Callable

from cpuwise import _channel as channel
from cpuwise.monitor.instrument import hooks, trial

_done = False
_streams = itertools.count(1)


def thread_pools(role: str) -> dict[str, Any]:
    """This process's pools: torch intra/inter-op and the native ones threadpoolctl sees."""
    info: dict[str, Any] = {"role": role, "torch_intra": None, "torch_interop": None, "native": []}
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            info["torch_intra"] = int(torch.get_num_threads())
            info["torch_interop"] = int(torch.get_num_interop_threads())
        except Exception:
            pass
    try:
        # lazy and optional: threadpoolctl scans the loaded native libraries, and may be missing in
        # the job's interpreter
        from threadpoolctl import threadpool_info

        info["native"] = [{"library": str(p.get("internal_api")), "api": str(p.get("user_api")),
                           "threads": int(p.get("num_threads") or 0)} for p in threadpool_info()]
    except Exception:  # threadpoolctl missing in this interpreter: torch's view is still useful
        pass
    return info


_reported: tuple[object, ...] | None = None


def report_pools(role: str) -> None:
    """Send this process's pools; skipped when torch's pool sizes are as last reported (a new
    DataLoader iterator every epoch must not re-scan the native libraries every epoch)."""
    global _reported
    torch = sys.modules.get("torch")
    key: tuple[object, ...] = (os.getpid(), channel.PATH, role,
                               torch.get_num_threads() if torch is not None else None)
    if key == _reported:
        return
    _reported = key
    channel.emit("thread_pools", thread_pools(role))


def loader_settings(loader: Any) -> dict[str, Any]:
    """What the doctor needs to know of a DataLoader (its id keeps repeats of one loader apart)."""
    workers = int(getattr(loader, "num_workers", 0) or 0)
    collate = getattr(loader, "collate_fn", None)
    return {"id": id(loader), "num_workers": workers, "batch_size": getattr(loader, "batch_size", None),
            "collate_fn": getattr(collate, "__qualname__", None) if collate is not None else None,
            "pin_memory": bool(getattr(loader, "pin_memory", False)),
            "persistent_workers": bool(getattr(loader, "persistent_workers", False)),
            "prefetch_factor": getattr(loader, "prefetch_factor", None) if workers > 0 else None}


def _patch_iter(base: Any) -> None:
    """Time each `__next__` of every DataLoader iterator as data-wait. Each iterator (and each epoch of a
    persistent one, `_reset`) is its own stream, and its first step's data-wait starts when the iterator
    was made: the workers' start-up (fork, the Dataset's first use) counts as waiting for data."""
    orig_init, orig_next, orig_reset = base.__init__, base.__next__, base._reset

    @functools.wraps(orig_init)
    def __init__(self: Any, loader: Any, *args: Any, **kwargs: Any) -> None:
        self._cpuwise_t_init = time.perf_counter()
        orig_init(self, loader, *args, **kwargs)
        self._cpuwise_stream = next(_streams)
        self._cpuwise_loader = id(loader)  # a --try-fixes upper bound replays per loader
        self._cpuwise_replayed = 0
        if channel.ACTIVE:
            channel.emit("dataloader", loader_settings(loader))
            report_pools("main")

    @functools.wraps(orig_reset)
    def _reset(self: Any, loader: Any, first_iter: bool = False, *args: Any, **kwargs: Any) -> Any:
        if not first_iter:  # a persistent iterator starts another epoch
            self._cpuwise_stream = next(_streams)
            self._cpuwise_t_init = time.perf_counter()
        return orig_reset(self, loader, first_iter, *args, **kwargs)

    @functools.wraps(orig_next)
    def __next__(self: Any) -> Any:
        t0 = time.perf_counter()
        t_init = getattr(self, "_cpuwise_t_init", None)
        if t_init is not None:
            self._cpuwise_t_init = None
            t0 = t_init
        try:
            out = orig_next(self) if not trial.replaying() else self._cpuwise_replay()
        except StopIteration:
            channel.note_next(t0, time.perf_counter(), source="dataloader",
                              stream=getattr(self, "_cpuwise_stream", 0), end=True)
            raise
        channel.note_next(t0, time.perf_counter(), source="dataloader",
                          stream=getattr(self, "_cpuwise_stream", 0), item=out)
        return out

    def _cpuwise_replay(self: Any) -> Any:
        """The upper bound of --try-fixes: keep the first batches this loader delivers (as it delivers
        them: collated, pinned), then hand them out again, one epoch's length per iterator, without
        running the loader."""
        cache = trial.replay_cache(getattr(self, "_cpuwise_loader", 0))
        n = self._cpuwise_replayed  # deliveries of this iterator, real or replayed
        if len(cache) < trial.replaying():
            out = orig_next(self)
            cache.append(out)
            self._cpuwise_replayed = n + 1
            return out
        try:
            length: int | None = len(self)
        except TypeError:  # an IterableDataset without a length: replay until the trial stops
            length = None
        if length is not None and n >= length:
            raise StopIteration
        self._cpuwise_replayed = n + 1
        return cache[n % len(cache)]

    base.__init__ = __init__
    base._cpuwise_replay = _cpuwise_replay
    base.__next__ = __next__
    base._reset = _reset


def _replayed(loader: Any, cache: list[Any]) -> Any:
    """An epoch of the upper bound's replay: the kept batches again, no workers started."""
    stream = next(_streams)
    try:
        length: int | None = len(loader)
    except TypeError:
        length = None
    n = 0
    while length is None or n < length:
        t0 = time.perf_counter()
        out = cache[n % len(cache)]
        channel.note_next(t0, time.perf_counter(), source="dataloader", stream=stream, item=out)
        n += 1
        yield out
    t = time.perf_counter()
    channel.note_next(t, t, source="dataloader", stream=stream, end=True)


def _patch_loader_iter(loader_cls: Any) -> None:
    """Once a loader's batches are kept (a --try-fixes upper bound), its next epochs replay them."""
    orig_iter = loader_cls.__iter__

    @functools.wraps(orig_iter)
    def __iter__(self: Any) -> Any:
        keep = trial.replaying()
        if keep:
            cache = trial.replay_cache(id(self))
            if len(cache) >= keep:
                return _replayed(self, cache)
        return orig_iter(self)

    loader_cls.__iter__ = __iter__


def _patch_worker_loop(worker_mod: Any) -> None:
    orig = worker_mod._worker_loop
    sig = inspect.signature(orig)

    @functools.wraps(orig)  # same __module__/__qualname__: still picklable for spawn workers
    def _worker_loop(*args: Any, **kwargs: Any) -> Any:
        channel.emit("role", {"role": "worker"})
        try:
            bound = sig.bind(*args, **kwargs)
            user_init = bound.arguments.get("init_fn")

            def init_fn(worker_id: int) -> None:
                capped = trial.OV is not None and sys.modules.get("torch") is not None
                if capped:  # a --try-fixes trial's thread caps hold whatever the job's init sets
                    trial.in_worker(sys.modules["torch"])
                if user_init is not None:
                    user_init(worker_id)
                if capped:
                    trial.in_worker(sys.modules["torch"])
                report_pools("worker")

            bound.arguments["init_fn"] = init_fn
            args, kwargs = bound.args, bound.kwargs
        except TypeError:  # a torch whose signature we don't know: run unwrapped
            pass
        return orig(*args, **kwargs)

    worker_mod._worker_loop = _worker_loop


def _timed(orig: Callable[..., Any], compiling: Callable[[], bool]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if compiling() or not self.is_cuda:
            return orig(self, *args, **kwargs)
        t0 = time.perf_counter()
        try:
            return orig(self, *args, **kwargs)
        finally:
            channel.add_sync(time.perf_counter() - t0)

    return wrapper


def _patch_sync(torch: Any) -> None:
    if getattr(torch.version, "cuda", None) is None:  # CPU-only build: nothing can sync
        return
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)
    for name in ("item", "cpu", "numpy", "tolist"):
        setattr(torch.Tensor, name, _timed(getattr(torch.Tensor, name), compiling))
    orig_sync = torch.cuda.synchronize

    @functools.wraps(orig_sync)
    def synchronize(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return orig_sync(*args, **kwargs)
        finally:
            channel.add_sync(time.perf_counter() - t0)

    torch.cuda.synchronize = synchronize


# The collectives a training loop calls from Python (DDP's gradient all-reduce runs inside backward, in
# C++: its wait is inferred by comparing ranks, see cpuwise.diagnose.rules.straggler).
COLLECTIVES = (
    "all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor",
    "broadcast", "barrier", "monitored_barrier", "all_to_all", "all_to_all_single", "reduce",
    "gather", "scatter", "all_gather_object", "broadcast_object_list", "gather_object",
    "scatter_object_list",
)


def _timed_collective(orig: Callable[..., Any], compiling: Callable[[], bool]) -> Callable[..., Any]:
    """A blocking collective's time is host time spent waiting for the other ranks: sync."""
    try:
        async_at = list(inspect.signature(orig).parameters).index("async_op")
    except (ValueError, TypeError):
        async_at = -1

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        is_async = kwargs.get("async_op") or (0 <= async_at < len(args) and bool(args[async_at]))
        if is_async or compiling():
            return orig(*args, **kwargs)
        t0 = time.perf_counter()
        try:
            return orig(*args, **kwargs)
        finally:
            channel.add_sync(time.perf_counter() - t0, collective=True)

    return wrapper


def _patch_distributed(torch: Any) -> None:
    """Report this process's rank once its process group exists; time blocking collectives as sync."""
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available():
        return
    # lazy: only where torch.distributed is built in; the module whose functions the package re-exports
    import torch.distributed.distributed_c10d as c10d

    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)
    for name in COLLECTIVES:
        orig = getattr(c10d, name, None)
        if orig is None:
            continue
        wrapped = _timed_collective(orig, compiling)
        setattr(c10d, name, wrapped)
        if getattr(dist, name, None) is orig:
            setattr(dist, name, wrapped)
    orig_init = c10d.init_process_group

    @functools.wraps(orig_init)
    def init_process_group(*args: Any, **kwargs: Any) -> Any:
        out = orig_init(*args, **kwargs)
        try:
            facts = hooks.rank_facts(rank=int(dist.get_rank()), world_size=int(dist.get_world_size()),
                                     backend=str(dist.get_backend()))
            channel.emit("rank", facts)
        except Exception:  # the job's process group works; only our report of it failed
            pass
        return out

    c10d.init_process_group = init_process_group
    if dist.init_process_group is orig_init:
        dist.init_process_group = init_process_group


def _patch_spawn(spawn_mod: Any) -> None:
    """torch.multiprocessing.spawn catches a rank's exception to hand it to the parent, so the job's
    excepthook never sees it: report it from inside the rank first."""
    orig = spawn_mod._wrap

    @functools.wraps(orig)  # same __module__/__qualname__: spawned children unpickle it by name
    def _wrap(fn: Any, i: int, args: Any, error_file: str) -> Any:
        def run(index: int, *rest: Any) -> Any:
            try:
                return fn(index, *rest)
            except KeyboardInterrupt:
                raise
            except Exception:
                hooks.report_exception(*sys.exc_info())  # type: ignore[arg-type]
                raise

        return orig(run, i, args, error_file)

    spawn_mod._wrap = _wrap


def patch_all() -> None:
    """Patch the imported torch (idempotent)."""
    global _done
    torch = sys.modules.get("torch")
    if _done or torch is None:
        return
    _done = True
    # lazy: torch is already imported by the job when this runs; these are its submodules to patch
    import torch.multiprocessing.spawn
    import torch.utils.data._utils.worker as worker_mod
    import torch.utils.data.dataloader as dl

    _patch_iter(dl._BaseDataLoaderIter)
    trial.patch_torch(torch, dl.DataLoader)
    if trial.replaying():
        _patch_loader_iter(dl.DataLoader)
    _patch_worker_loop(worker_mod)
    _patch_sync(torch)
    _patch_distributed(torch)
    # the module, not torch.multiprocessing's `spawn` function that shadows its name
    _patch_spawn(sys.modules["torch.multiprocessing.spawn"])
