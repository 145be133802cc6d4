"""Install the job-side hooks: hello, stack dumps on request, uncaught exceptions, how each process
ended, ranks from the launcher's environment, and torch patches once torch is imported.

Standard library only at import time: this runs in every Python process of the job. Other layers add
their own patches for modules the job may import with `after_import(name, callback)` (the framework
callbacks of `cpuwise.integrations` do).
"""

from __future__ import annotations

import atexit
import faulthandler
import importlib.abc
import importlib.machinery
import os
import signal
import sys
import traceback
from types import ModuleType, TracebackType
from typing import Any, Callable, Sequence

from cpuwise import _channel as channel
from cpuwise.monitor.instrument import STACK_DIR_ENV

STACK_SIGNAL = signal.SIGUSR2  # SIGUSR1 is taken by e.g. Lightning's SLURM requeue
_stack_file: Any = None
_installed = False


def stack_path(stack_dir: str, pid: int) -> str:
    return os.path.join(stack_dir, f"stack-{pid}.txt")


def _install_faulthandler() -> str | None:
    """Dump all threads' stacks to a per-process file when the doctor sends STACK_SIGNAL."""
    global _stack_file
    stack_dir = os.environ.get(STACK_DIR_ENV)
    if not stack_dir or not hasattr(faulthandler, "register"):
        return None
    path = stack_path(stack_dir, os.getpid())
    try:
        if _stack_file is not None:
            _stack_file.close()
        _stack_file = open(path, "w")  # noqa: SIM115 - must stay open for the signal handler
        faulthandler.register(STACK_SIGNAL, file=_stack_file, all_threads=True, chain=False)
    except (OSError, ValueError, RuntimeError):
        return None
    return path


# The variables launchers set in each rank's environment (torchrun / torch elastic, accelerate launch,
# DeepSpeed, Lightning, SLURM/MPI jobs): rank facts and which launcher started the process.
RANK_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK",
            "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "CUDA_VISIBLE_DEVICES")


def launcher() -> str:
    """Which launcher started this process, from its environment (a best guess; "" when none)."""
    env = os.environ
    if any(k.startswith("ACCELERATE_") for k in env):
        return "accelerate launch"
    if "TORCHELASTIC_RUN_ID" in env:
        return "torchrun"
    if any(k.startswith("DEEPSPEED_") or k == "DS_ACCELERATOR" for k in env):
        return "deepspeed"
    if "PL_TRAINER_GPUS" in env or any(k.startswith("PL_GLOBAL_") for k in env):
        return "lightning"
    mp = sys.modules.get("multiprocessing")  # loaded in every multiprocessing child
    if mp is not None and mp.parent_process() is not None:
        return "torch.multiprocessing.spawn"
    if "SLURM_PROCID" in env or "OMPI_COMM_WORLD_RANK" in env:
        return "slurm/mpi"
    return ""


def rank_facts(**known: object) -> dict[str, object]:
    """This process's rank facts: the launcher's environment, overridden by `known` (from torch)."""
    env = {k.lower(): os.environ[k] for k in RANK_ENV if k in os.environ}
    facts: dict[str, object] = {**env, "launcher": launcher()}
    facts.update({k: v for k, v in known.items() if v is not None})
    return facts


def _bye() -> None:
    channel.emit("bye", {})  # the interpreter is exiting normally (no uncaught exception, no signal)


def _hello(forked: bool = False) -> None:
    path = _install_faulthandler()
    argv = list(getattr(sys, "argv", []) or [])
    channel.emit("hello", {"argv": argv, "ppid": os.getppid(), "faulthandler": path})
    # A rank named by its launcher's environment. Not in a forked child (a DataLoader worker inherits
    # its rank's environment) nor in a multiprocessing child (whose rank, if any, comes from
    # init_process_group).
    if not forked and "RANK" in os.environ and "--multiprocessing-fork" not in argv:
        channel.emit("rank", rank_facts())


def _hello_forked() -> None:
    _hello(forked=True)


def _excepthook(prev: Callable[..., Any]) -> Callable[..., Any]:
    def hook(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(etype, KeyboardInterrupt):
            report_exception(etype, value, tb)
        prev(etype, value, tb)

    return hook


def report_exception(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """Send an exception that ends this process (its traceback, bounded) to the doctor."""
    text = "".join(traceback.format_exception(etype, value, tb))
    channel.emit("exception", {"text": text[-8000:]})


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, callback: Callable[[ModuleType], None]) -> None:
        self._loader, self._callback = loader, callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            self._callback(module)
        except Exception as exc:
            sys.stderr.write(f"cpuwise: could not instrument {module.__name__}: {exc}\n")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class PostImportFinder(importlib.abc.MetaPathFinder):
    """Runs a callback right after a named module finishes importing (without importing it early)."""

    def __init__(self, callbacks: dict[str, Callable[[ModuleType], None]]) -> None:
        self.callbacks = callbacks

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        cb = self.callbacks.get(fullname)
        if cb is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader, cb)
                return spec
        return None


def _patch_torch(module: ModuleType) -> None:
    # lazy: this module loads in every process of the job at start-up; the torch patches load only in
    # the processes that import torch
    from cpuwise.monitor.instrument import torch_patches

    torch_patches.patch_all()


_finder = PostImportFinder({})


def after_import(name: str, callback: Callable[[ModuleType], None]) -> None:
    """Run `callback(module)` once module `name` has been imported (at once if it already is); a
    failing callback writes one line to stderr and never breaks the job's import."""
    if name in sys.modules:
        try:
            callback(sys.modules[name])
        except Exception as exc:
            sys.stderr.write(f"cpuwise: could not instrument {name}: {exc}\n")
        return
    _finder.callbacks[name] = callback
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def install() -> None:
    """Install everything (idempotent). Does nothing outside `cpuwise doctor`."""
    global _installed
    if _installed or not channel.ACTIVE:
        return
    _installed = True
    _hello()
    atexit.register(_bye)
    sys.excepthook = _excepthook(sys.excepthook)
    if not faulthandler.is_enabled():
        faulthandler.enable()  # a segfaulting worker still leaves its Python stack on stderr
    os.register_at_fork(after_in_child=_hello_forked)
    after_import("torch", _patch_torch)
