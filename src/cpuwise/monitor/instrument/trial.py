"""The job side of a `cpuwise doctor --try-fixes` trial: apply its Overrides, measure, stop cleanly.

Loaded by the bootstrap only when the doctor set `CPUWISE_TRIAL_OVERRIDES` (`cpuwise._trials`). Every
delivery the channel records (`_channel.set_delivery_hook`) is counted in the process that trains: the
first `warmup` deliveries are not measured; from the entry of delivery `warmup` to the entry of delivery
`warmup + steps` the job trained `steps` batches, whose samples are counted from the batches themselves.
There the job is stopped at the step boundary (SystemExit in the main thread: `finally` blocks and
atexit run, the doctor gets every record) after one "trial" record with the measurement.

torch patches (`patch_torch`, called by `torch_patches.patch_all`): DataLoader arguments, cpuwise.data's
drop-in in place of a plain map-style Dataset's DataLoader, thread caps; the replay of the upper bound
lives in the DataLoader iterator patch (`replay_cache`).
"""

from __future__ import annotations

import _thread
import atexit
import functools
import inspect
import os
import threading
from typing import Any, Callable

from cpuwise import _channel as channel
from cpuwise._trials import OVERRIDES_ENV, RESULT_KIND, Overrides

OV: Overrides | None = None  # this process's trial, None outside --try-fixes
_dropin: Callable[..., Any] | None = None  # builds cpuwise.data's DataLoader (given by the bootstrap)
_in_worker = False
_replay: dict[int, list[Any]] = {}  # id(loader) -> the first batches it delivered


class _Meter:
    """Counts and times the deliveries of one step source in this process."""

    def __init__(self) -> None:
        self.source: str | None = None
        self.count = 0
        self.t_a = 0.0  # entry of delivery `warmup`: the measurement starts
        self.t_last = 0.0  # entry of the latest delivery
        self.samples = 0  # samples of the deliveries from `warmup` on
        self.last_samples = 0
        self.batch: int | None = None
        self.done = False


_meter = _Meter()


def batch_len(item: Any) -> int | None:
    """The samples in a delivered batch: the first dimension of its first tensor or array."""
    for _ in range(4):
        if isinstance(item, dict):
            item = next(iter(item.values()), None)
        elif isinstance(item, list | tuple):
            item = item[0] if item else None
        else:
            break
    shape = getattr(item, "shape", None)
    if shape is not None and len(shape) > 0:
        try:
            return int(shape[0])
        except (TypeError, ValueError):
            return None
    return None


def _result(stopped: bool, steps: int, samples: int, seconds: float) -> dict[str, Any]:
    return {"stopped": stopped, "steps": steps, "samples": samples, "seconds": round(seconds, 6),
            "warmup": OV.warmup if OV else 0, "source": _meter.source, "batch_size": _meter.batch,
            "samples_known": _meter.batch is not None}


def _stop() -> None:
    _meter.done = True
    if threading.current_thread() is threading.main_thread():
        raise SystemExit(0)
    _thread.interrupt_main()  # a loader iterated in a thread: end the job from its main thread


def on_delivery(t_enter: float, t_exit: float, source: str, item: Any) -> None:
    """Count one delivery; stop the job once the trial has measured its steps."""
    ov, m = OV, _meter
    if ov is None or m.done:
        return
    if m.source is None:
        m.source = source
    elif source != m.source:
        return  # one step source per process (a framework's clock beside its DataLoader counts once)
    k = m.count
    m.count += 1
    if k < ov.warmup:
        return
    if k == ov.warmup:
        m.t_a = t_enter
    measured = k - ov.warmup  # batches trained since t_a, the last one finished at t_enter
    seconds = t_enter - m.t_a
    if measured > 0 and ((ov.steps and measured >= ov.steps)
                         or (ov.max_seconds and seconds >= ov.max_seconds and measured >= 3)):
        channel.emit(RESULT_KIND, _result(True, measured, m.samples, seconds))
        _stop()
    n = batch_len(item)
    if n is not None:
        m.batch = n
    m.last_samples = n if n is not None else 0
    m.samples += m.last_samples
    m.t_last = t_enter


def _at_exit() -> None:
    """The job ended before its steps: report what it measured (up to its last delivery)."""
    m = _meter
    if OV is None or m.done or m.source is None or m.count <= (OV.warmup if OV else 0) + 1:
        return
    measured = m.count - 1 - OV.warmup
    channel.emit(RESULT_KIND, _result(False, measured, m.samples - m.last_samples, m.t_last - m.t_a))


def _after_fork() -> None:
    global _meter
    _meter = _Meter()  # a forked child (a data worker) measures nothing of its parent's


def install(dropin: Callable[..., Any] | None = None) -> Overrides | None:
    """Read this process's trial from the environment and start measuring (None: not a trial).

    Args:
        dropin: builds cpuwise.data's DataLoader from a torch DataLoader's arguments (the bootstrap
            gives it: the instrumentation does not import the pipeline).
    """
    global OV, _dropin
    text = os.environ.get(OVERRIDES_ENV)
    if not text or not channel.ACTIVE:
        return None
    OV, _dropin = Overrides.from_json(text), dropin
    channel.set_delivery_hook(on_delivery)
    atexit.register(_at_exit)
    os.register_at_fork(after_in_child=_after_fork)
    return OV


def replaying() -> int:
    """How many batches each loader keeps for the upper bound's replay (0: none)."""
    return OV.replay if OV is not None else 0


def replay_cache(loader_id: int) -> list[Any]:
    """The batches kept of one loader (the iterator patch fills it, then replays it)."""
    return _replay.setdefault(loader_id, [])


def _cap() -> int | None:
    if OV is None:
        return None
    return OV.threads_worker if _in_worker else OV.threads_main


def _limit_native(n: int) -> None:
    try:
        # lazy and optional: threadpoolctl scans the loaded native libraries, and may be missing in
        # the job's interpreter (the OMP_/MKL_/OPENBLAS_NUM_THREADS the doctor set still hold)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)
    except Exception:
        pass


def in_worker(torch: Any) -> None:
    """A DataLoader worker starts: cap its threads (before and after the job's worker_init_fn)."""
    global _in_worker
    _in_worker = True
    cap = _cap()
    if cap:
        torch.set_num_threads(cap)
        _limit_native(cap)


def _loader_args(a: dict[str, Any], ov: Overrides) -> None:
    """Put the trial's DataLoader arguments into the bound arguments `a`, kept valid for torch."""
    ds = a.get("dataset")
    if ov.num_workers is not None and hasattr(ds, "__getitem__") and hasattr(ds, "__len__"):
        # map-style only: workers over an iterable dataset would each yield all of it (a faster, wrong job)
        a["num_workers"] = ov.num_workers
    workers = int(a.get("num_workers") or 0)
    if ov.persistent_workers is not None:
        a["persistent_workers"] = ov.persistent_workers
    if ov.prefetch_factor is not None:
        a["prefetch_factor"] = ov.prefetch_factor
    if workers == 0:  # torch refuses these without workers
        a["persistent_workers"] = False
        if a.get("prefetch_factor") is not None:
            a["prefetch_factor"] = None
    if ov.pin_memory is not None:
        a["pin_memory"] = ov.pin_memory
    if ov.batch_size is not None and a.get("batch_sampler") is None and a.get("batch_size", 1) is not None:
        a["batch_size"] = ov.batch_size


def dropin_fits(a: dict[str, Any]) -> bool:
    """cpuwise.data's drop-in takes this DataLoader: a map-style Dataset, torch's own sampling."""
    ds = a.get("dataset")
    if ds is None or not (hasattr(ds, "__getitem__") and hasattr(ds, "__len__")):
        return False
    if type(ds).__module__.startswith("torch") and "Iterable" in type(ds).__name__:
        return False
    return (a.get("sampler") is None and a.get("batch_sampler") is None and a.get("worker_init_fn") is None
            and a.get("batch_size", 1) is not None)


def patch_pydataset(base: Any) -> None:
    """Keras: a trial's `num_workers` becomes every PyDataset's `workers` (in processes)."""
    ov = OV
    if ov is None or ov.num_workers is None or getattr(base.__init__, "_cpuwise_trial", False):
        return
    orig = base.__init__

    @functools.wraps(orig)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["workers"] = max(1, int(ov.num_workers or 1))
        kwargs["use_multiprocessing"] = kwargs["workers"] > 1
        orig(self, *args, **kwargs)

    __init__._cpuwise_trial = True  # type: ignore[attr-defined]
    base.__init__ = __init__


def patch_torch(torch: Any, dl_class: Any) -> None:
    """DataLoader arguments, the cpuwise.data drop-in and thread caps for this trial (idempotent)."""
    ov = OV
    if ov is None or getattr(dl_class.__init__, "_cpuwise_trial", False):
        return
    orig_init = dl_class.__init__
    sig = inspect.signature(orig_init)

    @functools.wraps(orig_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            bound = sig.bind(self, *args, **kwargs)
            _loader_args(bound.arguments, ov)
            args, kwargs = bound.args[1:], bound.kwargs
        except TypeError:  # arguments torch itself will reject: let it say so
            pass
        orig_init(self, *args, **kwargs)

    __init__._cpuwise_trial = True  # type: ignore[attr-defined]
    dl_class.__init__ = __init__
    if ov.cpuwise_data and _dropin is not None:
        dropin = _dropin

        def __new__(cls: Any, *args: Any, **kwargs: Any) -> Any:
            if cls is dl_class:
                try:
                    bound = sig.bind(None, *args, **kwargs)
                    a = dict(bound.arguments)
                    if dropin_fits(a):
                        _loader_args(a, ov)
                        a.pop("self", None)
                        if ov.num_workers is None:
                            a["num_workers"] = None  # the engine sizes its workers
                        return dropin(**a)
                except Exception as exc:  # not for the drop-in: torch's own loader, as the job wrote it
                    channel.emit("trial_note", {"text": f"cpuwise.data drop-in not used: {exc}"})
            return object.__new__(cls)

        dl_class.__new__ = __new__
    cap = ov.threads_main
    if cap or ov.threads_worker:
        orig_set = torch.set_num_threads

        @functools.wraps(orig_set)
        def set_num_threads(n: int) -> None:
            orig_set(_cap() or n)

        torch.set_num_threads = set_num_threads
        if cap:
            orig_set(cap)
            _limit_native(cap)
