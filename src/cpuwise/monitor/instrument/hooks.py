"""Install the job-side hooks: hello, stack dumps on request, uncaught exceptions, torch patches.

Standard library only at import time: this runs in every Python process of the job.
"""

from __future__ import annotations

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


def _hello() -> None:
    path = _install_faulthandler()
    channel.emit("hello", {"argv": list(getattr(sys, "argv", []) or []), "ppid": os.getppid(),
                           "faulthandler": path})


def _excepthook(prev: Callable[..., Any]) -> Callable[..., Any]:
    def hook(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(etype, KeyboardInterrupt):
            text = "".join(traceback.format_exception(etype, value, tb))
            channel.emit("exception", {"text": text[-8000:]})
        prev(etype, value, tb)

    return hook


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


def install() -> None:
    """Install everything (idempotent). Does nothing outside `cpuwise doctor`."""
    global _installed
    if _installed or not channel.ACTIVE:
        return
    _installed = True
    _hello()
    sys.excepthook = _excepthook(sys.excepthook)
    if not faulthandler.is_enabled():
        faulthandler.enable()  # a segfaulting worker still leaves its Python stack on stderr
    os.register_at_fork(after_in_child=_hello)
    if "torch" in sys.modules:
        _patch_torch(sys.modules["torch"])
    else:
        sys.meta_path.insert(0, PostImportFinder({"torch": _patch_torch}))
