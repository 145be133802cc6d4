"""The Linux fast path of the process-tree sampler: plain reads of /proc/PID/{stat,status,io}.

psutil's generic path costs ~0.5 ms per process per sample and finds children by reading the
stat file of *every* process on the machine; here one sample of one process is three small reads,
and children come from /proc/PID/task/TID/children (only the job's own processes are touched).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
STATES = {"R": "running", "S": "sleeping", "D": "disk-sleep", "Z": "zombie", "T": "stopped",
          "t": "tracing-stop", "X": "dead", "x": "dead", "I": "idle", "K": "wake-kill", "W": "waking",
          "P": "parked"}


@dataclass
class RawProc:
    pid: int
    ppid: int
    name: str
    state: str
    cpu_s: float  # user + system
    start_s: float  # since boot
    num_threads: int
    rss_bytes: int
    core: int | None
    ctx_voluntary: int
    ctx_involuntary: int
    read_bytes: int | None
    minflt: int = 0  # minor page faults (a copy-on-write copy is one)
    children_cpu_s: float = 0.0  # user + system of its children that it has reaped (cutime + cstime)


def read_file(path: str) -> bytes:
    """The whole of a small /proc file in one unbuffered read (what the kernel has at that moment)."""
    with open(path, "rb", buffering=0) as f:
        return f.read()


def read_process(pid: int, proc: str = "/proc", *, counters: bool = True) -> RawProc | None:
    """One process's counters, or None if it is gone (or became unreadable) meanwhile.

    Args:
        counters: also read the cumulative counters of /proc/PID/status and /proc/PID/io (context
            switches, bytes read); without, those fields are 0 / None and only `stat` is read.
    """
    base = f"{proc}/{pid}"
    try:
        stat = read_file(base + "/stat")
        status = read_file(base + "/status") if counters else b""
    except OSError:
        return None
    head, _, rest = stat.rpartition(b")")
    name = head.partition(b"(")[2].decode(errors="replace")
    f = rest.split()
    try:
        vol = invol = 0
        for line in status.splitlines()[-8:]:  # the ctxt_switches lines are at the end
            if line.startswith(b"voluntary_ctxt_switches:"):
                vol = int(line.split()[1])
            elif line.startswith(b"nonvoluntary_ctxt_switches:"):
                invol = int(line.split()[1])
        # Fields after "(comm)", 0-based: state 0, ppid 1, minflt 7, utime 11, stime 12, cutime 13,
        # cstime 14, num_threads 17, starttime 19, rss 21 (pages), processor 36 (proc(5)).
        raw = RawProc(pid=pid, ppid=int(f[1]), name=name, state=STATES.get(f[0].decode(), f[0].decode()),
                      cpu_s=(int(f[11]) + int(f[12])) / CLK_TCK, start_s=int(f[19]) / CLK_TCK,
                      num_threads=int(f[17]), rss_bytes=int(f[21]) * PAGE,
                      core=int(f[36]) if len(f) > 36 else None, ctx_voluntary=vol, ctx_involuntary=invol,
                      read_bytes=None, minflt=int(f[7]), children_cpu_s=(int(f[13]) + int(f[14])) / CLK_TCK)
    except (IndexError, ValueError):
        return None
    if not counters:
        return raw
    try:
        for line in read_file(base + "/io").splitlines():
            if line.startswith(b"read_bytes:"):
                raw.read_bytes = int(line.split()[1])
                break
    except OSError:
        pass
    return raw


def children(pid: int, proc: str = "/proc") -> list[int] | None:
    """Direct children of `pid` (None when the kernel has no children files: use psutil)."""
    try:
        tids = os.listdir(f"{proc}/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tids:
        try:
            out.extend(int(c) for c in read_file(f"{proc}/{pid}/task/{tid}/children").split())
        except FileNotFoundError:
            return None  # CONFIG_PROC_CHILDREN is off
        except OSError:
            continue
    return out


def tree(root: int, proc: str = "/proc") -> list[int] | None:
    """`root` and all its descendants, or None when children files are unavailable."""
    seen, todo = [root], [root]
    while todo:
        kids = children(todo.pop(), proc)
        if kids is None:
            return None
        for k in kids:
            if k not in seen:
                seen.append(k)
                todo.append(k)
    return seen


def uptime_s(proc: str = "/proc") -> float:
    """Seconds since boot (the clock of a process's start time in /proc/PID/stat)."""
    return float(read_file(f"{proc}/uptime").split()[0])


def proc_available(proc: str = "/proc") -> bool:
    """Whether this kernel offers what the /proc sampler needs (stat files and children files)."""
    return os.path.exists(f"{proc}/self/stat") and tree(os.getpid(), proc) is not None
