"""Every process of the job, also those that lost their parent: found, sampled, ended, reaped.

A job's tree under its root process misses descendants whose parent exited: a helper that daemonizes
with a double fork, or a launcher's child whose launcher died. Linux re-parents such orphans to the
nearest *child subreaper* ancestor, so the doctor makes itself one (`prctl(PR_SET_CHILD_SUBREAPER)`)
while the job runs: orphans of the job become the doctor's children, where `JobTree` finds them. An
adopted child belongs to the job when it is in the job's session (the job starts in a new one) or,
for one that called `setsid` itself, when its environment carries the job's channel variable.

The direct child also gets a parent-death signal (`prctl(PR_SET_PDEATHSIG)`, set by a tiny exec shim
before the job's program starts), so a doctor that is SIGKILLed takes the job with it.

    prev = set_child_subreaper(True)
    proc = subprocess.Popen(with_parent_death_signal(cmd), start_new_session=True, env=env)
    tree = JobTree(proc.pid, marker=b"CPUWISE_CHANNEL=/tmp/.../channel.jsonl", adopter=os.getpid())
    ...
    tree.end()                       # SIGTERM, then SIGKILL, every process left; adopted ones reaped
    set_child_subreaper(prev)
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

from cpuwise.monitor import proctree

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

# Run by `python -I -S -c`: set the parent-death signal, check the doctor did not die before that, then
# become the job's program (same pid). SIGTERM lets launchers (torchrun, mp.spawn) end their own children.
_SHIM = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]): os._exit(1)\n"
    "try:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "except OSError as exc:\n"
    "    sys.stderr.write(f'cpuwise doctor: cannot start {sys.argv[2]!r}: {exc}\\n')\n"
    "    os._exit(127)\n"
)


def _prctl(option: int, arg: int = 0) -> int | None:
    """prctl(2) through libc, or None where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    if option == PR_GET_CHILD_SUBREAPER:
        out = ctypes.c_int(0)
        return int(out.value) if fn(option, ctypes.byref(out), 0, 0, 0) == 0 else None
    return int(fn(option, arg, 0, 0, 0))


def set_child_subreaper(on: bool) -> bool | None:
    """Make this process a child subreaper (or stop being one); the previous setting, None if unsupported."""
    prev = _prctl(PR_GET_CHILD_SUBREAPER)
    if prev is None or _prctl(PR_SET_CHILD_SUBREAPER, int(on)) != 0:
        return None
    return bool(prev)


def with_parent_death_signal(cmd: list[str]) -> list[str]:
    """`cmd` started through the exec shim that gives it a parent-death signal (Linux); else unchanged."""
    if not sys.platform.startswith("linux"):
        return list(cmd)
    return [sys.executable, "-I", "-S", "-c", _SHIM, str(os.getpid()), *cmd]


def _stat_fields(pid: int, proc: str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after "(comm)": state 0, ppid 1, pgrp 2, session 3, starttime 19."""
    try:
        return proctree.read_file(f"{proc}/{pid}/stat").rpartition(b")")[2].split()
    except OSError:
        return None


class JobTree:
    """The job's processes: the tree under `root_pid` plus the job's orphans adopted by `adopter`.

    Args:
        marker: `NAME=value` bytes found in the environment of every process the job starts (the
            channel variable): recognises an adopted process that left the job's session.
        adopter: the subreaper that adopts the job's orphans (the doctor: `os.getpid()`); None looks at
            the tree under the root only.
    """

    def __init__(self, root_pid: int, *, marker: bytes | None = None, proc: str = "/proc",
                 adopter: int | None = None) -> None:
        self.root_pid, self.marker, self.proc = root_pid, marker, proc
        self.adopter = adopter
        f = _stat_fields(root_pid, proc)
        self.session = int(f[3]) if f is not None and len(f) > 3 else root_pid
        self._ours: dict[tuple[int, bytes], bool] = {}  # (pid, start time) -> belongs to the job
        self.seen: set[int] = {root_pid}

    def _belongs(self, pid: int) -> bool:
        f = _stat_fields(pid, self.proc)
        if f is None or len(f) < 20:
            return False
        key = (pid, f[19])
        known = self._ours.get(key)
        if known is None:
            known = int(f[3]) == self.session
            if not known and self.marker is not None:
                try:
                    known = self.marker in proctree.read_file(f"{self.proc}/{pid}/environ").split(b"\0")
                except OSError:
                    known = False
            self._ours[key] = known
        return known

    def adopted(self) -> list[int]:
        """The adopter's children that are the job's orphans (never the root itself)."""
        if self.adopter is None:
            return []
        kids = proctree.children(self.adopter, self.proc) or []
        return [k for k in kids if k != self.root_pid and self._belongs(k)]

    def pids(self) -> list[int]:
        """The root (while it exists) and every descendant, adopted ones included; reaps adopted zombies.

        Returns [root] only when this kernel has no /proc children files (use psutil there)."""
        self.reap()
        out: list[int] = []
        todo = ([self.root_pid] if os.path.exists(f"{self.proc}/{self.root_pid}") else []) + self.adopted()
        while todo:
            pid = todo.pop()
            if pid in out:
                continue
            out.append(pid)
            kids = proctree.children(pid, self.proc)
            if kids is None:
                return [self.root_pid]
            todo.extend(kids)
        self.seen.update(out)
        return out

    def reap(self) -> None:
        """Collect the exit status of adopted children that ended (they would stay zombies otherwise)."""
        for pid in self.adopted():
            f = _stat_fields(pid, self.proc)
            if f is not None and f[0] == b"Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def _alive(self, exclude_root: bool, skip_group: int | None = None) -> list[int]:
        live = []
        for pid in self.pids():
            if exclude_root and pid == self.root_pid:
                continue
            f = _stat_fields(pid, self.proc)
            if f is not None and f[0] != b"Z" and (skip_group is None or int(f[2]) != skip_group):
                live.append(pid)
        return live

    def signal(self, sig: int, *, exclude_root: bool = False, skip_group: int | None = None) -> list[int]:
        """Send `sig` to every live process of the job (but those in process group `skip_group`, which
        the caller signals as a group); returns the pids it was sent to."""
        sent = []
        for pid in self._alive(exclude_root, skip_group):
            try:
                os.kill(pid, sig)
                sent.append(pid)
            except (ProcessLookupError, PermissionError):
                continue
        return sent

    def end(self, grace_s: float = 2.0, *, exclude_root: bool = True) -> None:
        """SIGTERM every process left, SIGKILL what is alive after `grace_s`, and reap the adopted ones.

        The root is left out by default: its Popen owns its exit status (and waits for it)."""
        if not self.signal(signal.SIGTERM, exclude_root=exclude_root):
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and self._alive(exclude_root):
            time.sleep(0.02)
        self.signal(signal.SIGKILL, exclude_root=exclude_root)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and self._alive(exclude_root):
            time.sleep(0.02)
        self.reap()
