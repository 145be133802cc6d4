"""Private memory (USS) readings within a CPU budget.

Private memory is what shows copy-on-read growth in forked workers: RSS does not change when a page
shared with the parent is copied, the private count does. The kernel sums it in
/proc/PID/smaps_rollup (Private_Clean + Private_Dirty + Private_Hugetlb), but that read walks the
process's page tables: ~20 us of kernel CPU per resident MB (~7 ms for a process that imported torch,
~13 ms at 550 MB). So each tick reads at most one process, and only while the measured CPU of these
reads stays under `fraction` of one core (a token bucket with `credit_s` of burst).

Which process: round-robin over the data workers (where copy-on-read happens, and the only processes
whose private memory a rule reads), weighted towards those whose memory may have changed: the one read
longest ago,
with its wait multiplied by the minor page faults it took since its last reading (every copied page is
a minor fault, so a worker copying pages jumps the queue). A process never read goes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil

from cpuwise.monitor import proctree

# The doctor's whole overhead budget is 1 % of one core per 10 sampled processes; its ticks cost ~0.05 ms
# per process. 0.6 % of a core for private-memory reads keeps the total under 1 % for up to 10 processes
# and reads a 400 MB worker about every 3 s when two workers share the budget.
PRIVATE_READ_FRACTION = 0.006
PRIVATE_READ_CREDIT_S = 0.05


def read_private(pid: int, proc: str = "/proc") -> int | None:
    """Private (unique) bytes of `pid` from smaps_rollup; psutil's USS where that file does not exist."""
    try:
        text = proctree.read_file(f"{proc}/{pid}/smaps_rollup")
    except FileNotFoundError:
        return _psutil_uss(pid) if _exists(pid, proc) else None  # a kernel older than 4.14
    except OSError:
        return None
    kib = 0
    for line in text.splitlines():
        if line.startswith(b"Private_"):
            try:
                kib += int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return kib * 1024


def _exists(pid: int, proc: str) -> bool:
    try:
        proctree.read_file(f"{proc}/{pid}/stat")
        return True
    except OSError:
        return False


def _psutil_uss(pid: int) -> int | None:
    try:
        return int(psutil.Process(pid).memory_full_info().uss)
    except (psutil.Error, AttributeError, NotImplementedError, OSError):
        return None


# The name the samplers and tests have used for this reader.
read_uss = read_private


class UssBudget:
    """Decides which process (if any) gets a private-memory reading this tick, and reads it."""

    def __init__(self, fraction: float = PRIVATE_READ_FRACTION, credit_s: float = PRIVATE_READ_CREDIT_S,
                 reader: Callable[[int], int | None] = read_private,
                 clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = time.thread_time) -> None:
        self.fraction, self.credit_s = fraction, credit_s
        self.reader, self.clock, self.cpu_clock = reader, clock, cpu_clock
        self.tokens = credit_s
        self._last = clock()
        self._last_read: dict[int, float] = {}
        self._faults_at_read: dict[int, int] = {}
        self._ok = self._failed = 0
        self.cpu_s = 0.0  # CPU spent on readings so far
        self.broken = False  # private memory not readable here (permissions, platform): stop trying

    def pick(self, pids: list[int], faults: dict[int, int] | None = None) -> int | None:
        """The pid to read this tick, or None when the budget is spent.

        Args:
            faults: pid -> its cumulative minor page faults (from /proc/PID/stat), to prefer the
                processes whose memory changed since their last reading.
        """
        now = self.clock()
        self.tokens = min(self.credit_s, self.tokens + (now - self._last) * self.fraction)
        self._last = now
        if self.broken or self.tokens <= 0 or not pids:
            return None
        faults = faults or {}

        def urgency(pid: int) -> float:
            last = self._last_read.get(pid)
            if last is None:
                return float("inf")
            new_pages = max(0, faults.get(pid, 0) - self._faults_at_read.get(pid, 0))
            return (now - last) * (1.0 + new_pages / 256.0)  # 256 faults = 1 MB of pages touched

        return max(pids, key=urgency)

    def read(self, pid: int, faults: int | None = None) -> int | None:
        """Read `pid`'s private memory and charge its CPU time to the budget."""
        c0 = self.cpu_clock()
        value = self.reader(pid)
        spent = self.cpu_clock() - c0
        self.tokens -= spent
        self.cpu_s += spent
        self._last_read[pid] = self.clock()
        if faults is not None:
            self._faults_at_read[pid] = faults
        if value is not None:
            self._ok += 1
        else:  # one failure may be a process that just exited; three and never a success: give up
            self._failed += 1
            self.broken = self._ok == 0 and self._failed >= 3
        return value

    def forget(self, pid: int) -> None:
        self._last_read.pop(pid, None)
        self._faults_at_read.pop(pid, None)
