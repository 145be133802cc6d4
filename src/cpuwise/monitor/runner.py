"""Run a command under the doctor: start it instrumented, record it, end it cleanly, keep its exit code.

    rec = run_job(["python", "train.py"], interval=0.1, hang_timeout=120)

The job runs in its own session (process group) so that Ctrl-C / SIGTERM to the doctor, a hang, or
the job's own exit can stop its whole tree: SIGINT first (Python unwinds and flushes), then SIGTERM,
then SIGKILL. Every process of the group is waited for or killed: no zombies, no stray workers.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cpuwise import _channel as channel
from cpuwise._schema import (
    END_CRASHED,
    END_EXITED,
    END_HUNG,
    END_INTERRUPTED,
    GpuStatus,
    Recording,
)
from cpuwise.errors import CommandNotFoundError, ConfigError
from cpuwise.host import host_facts
from cpuwise.monitor.backends import GpuBackend
from cpuwise.monitor.instrument import BOOT_DIR, PACKAGE_ROOT, SRC_ENV, STACK_DIR_ENV
from cpuwise.monitor.jobtree import JobTree, set_child_subreaper, with_parent_death_signal
from cpuwise.monitor.nvml import NvmlBackend
from cpuwise.monitor.procfs import ProcSystemBackend, process_backend
from cpuwise.monitor.recorder import Recorder, check_interval
from cpuwise.monitor.stacks import dump_stacks

IDLE_CPU_PERCENT = 10.0  # a tree below 10 % of one core is idle (a busy job uses >= ~50 %)
_PYTHON_NAME = re.compile(r"^(python|pypy)[0-9.]*$")


def resolve_command(argv: list[str]) -> list[str]:
    """The argv to start: checks the program exists; a non-executable `x.py` runs with this Python."""
    if not argv:
        raise CommandNotFoundError("expected a command after `--` (e.g. `cpuwise doctor -- python "
                                   "train.py`), found none.")
    exe = argv[0]
    if os.sep in exe or (exe.endswith(".py") and os.path.isfile(exe)):
        path = exe if os.path.isfile(exe) else None
    else:
        path = shutil.which(exe)
    if path is None:
        raise CommandNotFoundError(
            f"cannot run {exe!r}: expected a program on PATH or an existing file, found neither. "
            "Check the spelling, or give the full path (for a script: `python path/to/script.py`).")
    if exe.endswith(".py") and not os.access(path, os.X_OK):
        return [sys.executable, path, *argv[1:]]
    if not os.access(path, os.X_OK):
        raise CommandNotFoundError(f"{path!r} exists but is not executable: run it with its "
                                   f"interpreter or `chmod +x {path}`.")
    return argv


def is_python_command(argv: list[str]) -> bool:
    """`python ...`, `python3.11 ...`, `*.py`, or a script whose #! line names python."""
    if not argv:
        return False
    name = os.path.basename(argv[0])
    if _PYTHON_NAME.match(name) or name.endswith(".py"):
        return True
    path = shutil.which(argv[0]) if os.sep not in argv[0] else argv[0]
    try:
        with open(path or "", "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def exit_code_of(returncode: int) -> int:
    """Shell convention: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _job_env(chan: Path, stacks: Path) -> dict[str, str]:
    env = os.environ.copy()
    env[channel.ENV_VAR] = str(chan)
    env[STACK_DIR_ENV] = str(stacks)
    env[SRC_ENV] = str(PACKAGE_ROOT)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BOOT_DIR), env.get("PYTHONPATH", "")) if p)
    return env


def _killpg(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _signal_job(pgid: int, tree: JobTree | None, sig: int) -> None:
    """`sig` to the job's process group, and to each of its processes outside the group (setsid)."""
    _killpg(pgid, sig)
    if tree is not None:
        tree.signal(sig, skip_group=pgid)


def stop_tree(proc: subprocess.Popen[Any], tree: JobTree | None = None, *, first: int = signal.SIGINT,
              grace_s: float = 5.0) -> None:
    """Stop the job: `first`, then SIGTERM, then SIGKILL, waiting for its main process between; then end
    every process left (see `end_rest`)."""
    steps: tuple[tuple[int, float], ...] = ((first, grace_s), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0))
    for sig, wait in steps:
        if proc.poll() is not None:
            break
        _signal_job(proc.pid, tree, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    end_rest(proc.pid, tree)


def end_rest(pgid: int, tree: JobTree | None) -> None:
    """End what is left of the job after its main process exited: orphaned workers, double-forked and
    setsid helpers (the doctor adopted them as a subreaper, and reaps them), then the process group."""
    if tree is not None:
        tree.end()
    if not _killpg(pgid, 0):
        return
    _killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and _killpg(pgid, 0):
        time.sleep(0.05)
    _killpg(pgid, signal.SIGKILL)


def check_hang_timeout(hang_timeout: float | None, name: str = "hang_timeout") -> None:
    """ConfigError unless `hang_timeout` is None or a finite number of seconds >= 0 (0: never)."""
    if hang_timeout is None:
        return
    if not isinstance(hang_timeout, int | float) or not math.isfinite(hang_timeout) or hang_timeout < 0:
        raise ConfigError(f"{name} must be a finite number of seconds >= 0 (0: never end the job), got "
                          f"{hang_timeout!r}")


def run_job(argv: list[str], *, interval: float = 0.1, hang_timeout: float | None = None,
            gpu: GpuBackend | None = None, workdir: Path | None = None, env: dict[str, str] | None = None,
            cwd: Path | None = None, time_limit: float | None = None) -> Recording:
    """Run `argv` under the doctor and return its Recording (end_reason and exit_code set).

    Args:
        env: variables set in the job's environment on top of the doctor's (a --try-fixes trial's).
        cwd: the job's working directory (default: the doctor's).
        time_limit: end the job after this many seconds (end_reason "hung", with a note saying so).

    Raises:
        CommandNotFoundError: the program does not exist (the CLI exits 127).
    """
    check_interval(interval)
    check_hang_timeout(hang_timeout)
    cmd = resolve_command(list(argv))
    tmp = Path(tempfile.mkdtemp(prefix="cpuwise-doctor-", dir=workdir))
    chan, stack_dir = tmp / "channel.jsonl", tmp / "stacks"
    stack_dir.mkdir()
    gpu = gpu if gpu is not None else NvmlBackend()
    started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    job_env = _job_env(chan, stack_dir)
    extra = dict(env or {})
    more_path = extra.pop("PYTHONPATH", None)
    job_env.update(extra)
    if more_path:  # after the bootstrap, which must stay first
        job_env["PYTHONPATH"] = os.pathsep.join((job_env["PYTHONPATH"], more_path))
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage0.ru_utime + usage0.ru_stime
    # The doctor adopts the job's orphans while it runs (double forks, setsid helpers, a dead launcher's
    # children), so it samples and ends them; the job's main process dies with a SIGKILLed doctor.
    was_subreaper = set_child_subreaper(True)
    try:
        proc = subprocess.Popen(with_parent_death_signal(cmd), env=job_env, start_new_session=True,
                                cwd=cwd)
    except OSError as exc:
        gpu.close()
        if was_subreaper is not None:
            set_child_subreaper(was_subreaper)
        shutil.rmtree(tmp, ignore_errors=True)
        raise CommandNotFoundError(f"cannot start {cmd[0]!r}: {exc}. Check that it is a program or "
                                   "script this machine can run.") from exc
    tree = JobTree(proc.pid, marker=f"{channel.ENV_VAR}={chan}".encode(),
                   adopter=os.getpid() if was_subreaper is not None else None)
    stop = threading.Event()
    handlers: dict[int, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: the user does not want to wait for a clean stop
            _killpg(proc.pid, signal.SIGKILL)
            tree.signal(signal.SIGKILL, skip_group=proc.pid)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        # SIGHUP too: the job runs in its own session, so a closed terminal would orphan it.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            handlers[signum] = signal.signal(signum, on_signal)
    end_reason: str | None = None
    stacks: dict[str, str] = {}
    timed_out = False
    recorder = Recorder(process_backend(proc.pid, tree), ProcSystemBackend(), gpu,
                        interval=interval, channel_path=chan, t0=t0).start()
    try:
        while proc.poll() is None:
            if stop.is_set():
                end_reason = END_INTERRUPTED
                stop_tree(proc, tree)
                break
            if time_limit and time.perf_counter() - t0 > time_limit:
                recorder.read_channel()
                stacks = dump_stacks(recorder.processes_backend.pids(),
                                     recorder.state.faulthandler_pids, stack_dir)
                end_reason, timed_out = END_HUNG, True
                stop_tree(proc, tree, first=signal.SIGTERM, grace_s=3.0)
                break
            if hang_timeout and _hung(recorder, hang_timeout):
                recorder.read_channel()
                stacks = dump_stacks(recorder.processes_backend.pids(),
                                     recorder.state.faulthandler_pids, stack_dir)
                end_reason = END_HUNG
                stop_tree(proc, tree, first=signal.SIGTERM, grace_s=3.0)
                break
            stop.wait(0.05)
    finally:
        if proc.poll() is None:  # an exception in the doctor itself: never leave the job behind
            stop_tree(proc, tree)
        proc.wait()
        recorder.stop()  # its last tick sees what is left of the job (adopted helpers) before the end
        end_rest(proc.pid, tree)
        if was_subreaper is not None:
            set_child_subreaper(was_subreaper)
        for old_sig, h in handlers.items():
            signal.signal(old_sig, h)
    try:
        return _finish(argv, cmd, proc, recorder, interval, started_at, t0, stacks, end_reason, hang_timeout,
                       cpu0, time_limit if timed_out else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _finish(argv: list[str], cmd: list[str], proc: subprocess.Popen[bytes], recorder: Recorder,
            interval: float, started_at: str, t0: float, stacks: dict[str, str], end_reason: str | None,
            hang_timeout: float | None, cpu0: float, timed_out: float | None = None) -> Recording:
    """Turn what the recorder collected into the Recording (how the job ended, notes)."""
    rc = exit_code_of(proc.returncode)
    rec = Recording(command=list(argv), started_at=started_at, duration_s=round(time.perf_counter() - t0, 3),
                    interval_s=interval, end_reason="", exit_code=rc, host=host_facts().to_dict(),
                    gpu=GpuStatus(available=False))
    recorder.fill(rec)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # The doctor's own cost: its whole process (the CLI) and its peak memory (kernel's high-water mark).
    rec.doctor.update(cpu_s=round(usage.ru_utime + usage.ru_stime - cpu0, 3), peak_rss_bytes=peak_rss(),
                      t0_unix=round(time.time() - (time.perf_counter() - t0), 6), cpuwise_version=version())
    rec.host["node"] = socket.gethostname()
    rec.job_info["python_command"] = is_python_command(cmd)
    if rec.job_info["python_command"] and not rec.job_info.get("instrumented"):
        rec.notes.append("the Python job never loaded cpuwise's instrumentation (an interpreter that "
                         "cannot import cpuwise, or python -S / -I): no per-step timing. Run it with "
                         "the Python that has cpuwise installed, or use cpuwise.watch() in the script.")
    rec.stacks = stacks
    if end_reason is None:
        crashed = proc.returncode < 0 or (rc != 0 and rec.job_info.get("python_exception"))
        end_reason = END_CRASHED if crashed else END_EXITED
    rec.end_reason = end_reason
    if timed_out is not None:
        rec.notes.append(f"the job ran past its time limit of {timed_out:g} s: the doctor dumped the "
                         f"stacks of {len(stacks)} process(es) and ended it")
    elif end_reason == END_HUNG:
        rec.notes.append(f"no step progress for {hang_timeout:g} s while the job's CPU was idle: the "
                         f"doctor dumped the stacks of {len(stacks)} process(es) and ended the job")
    return rec


def peak_rss() -> int:
    """This process's peak resident memory: VmHWM of /proc/self/status (ru_maxrss also counts the memory
    of the process that forked this one before its exec, e.g. a test runner), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    maxrss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return maxrss * (1 if sys.platform == "darwin" else 1024)


def version() -> str:
    """This cpuwise's version (recordings of several nodes are merged only when it is the same)."""
    try:
        return importlib.metadata.version("cpuwise")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _hung(recorder: Recorder, hang_timeout: float) -> bool:
    now = recorder.now()
    last = recorder.last_progress() or 0.0
    if now - last < hang_timeout:
        return False
    cpu = recorder.tree_cpu_percent(min(hang_timeout, 5.0))
    return cpu is not None and cpu < IDLE_CPU_PERCENT
