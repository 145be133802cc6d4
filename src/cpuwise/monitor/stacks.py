"""Dump the Python stack of every process of a hung job: py-spy where it works, else faulthandler."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cpuwise.monitor.instrument.hooks import STACK_SIGNAL, stack_path


def find_py_spy() -> str | None:
    """py-spy on PATH or next to this Python (a venv that is not activated)."""
    found = shutil.which("py-spy")
    if found:
        return found
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.is_file() and os.access(local, os.X_OK) else None


def py_spy_dump(pid: int, exe: str, timeout_s: float = 10.0) -> str | None:
    """`py-spy dump` of one process, or None when it could not attach."""
    try:
        r = subprocess.run([exe, "dump", "--pid", str(pid)], capture_output=True, text=True,
                           timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 and r.stdout.strip() else None


def faulthandler_dumps(pids: list[int], stack_dir: Path, wait_s: float = 1.0) -> dict[str, str]:
    """Ask instrumented processes to write their stacks (STACK_SIGNAL) and read the files back."""
    asked = []
    for pid in pids:
        try:
            os.kill(pid, STACK_SIGNAL)
            asked.append(pid)
        except OSError:
            continue
    out: dict[str, str] = {}
    deadline = time.monotonic() + wait_s
    while asked and time.monotonic() < deadline:
        time.sleep(0.05)
        for pid in list(asked):
            try:
                text = Path(stack_path(str(stack_dir), pid)).read_text()
            except OSError:
                continue
            if text.strip():
                out[str(pid)] = "faulthandler:\n" + text
                asked.remove(pid)
    return out


def dump_stacks(pids: list[int], faulthandler_pids: set[int], stack_dir: Path) -> dict[str, str]:
    """pid (str) -> stack text, for each process that could be dumped.

    Args:
        pids: the processes of the job.
        faulthandler_pids: those whose cpuwise instrumentation registered the dump signal (only they
            may receive it: to any other process the signal would be fatal).
    """
    out: dict[str, str] = {}
    exe = find_py_spy()
    if exe is not None:
        for pid in pids:
            text = py_spy_dump(pid, exe)
            if text is not None:
                out[str(pid)] = "py-spy dump:\n" + text
    rest = [p for p in pids if str(p) not in out and p in faulthandler_pids]
    out.update(faulthandler_dumps(rest, stack_dir))
    return out
