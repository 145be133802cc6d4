"""USS (unique set size) readings within a CPU budget.

USS is what shows copy-on-read memory growth in forked workers (RSS does not change when a shared
page gets copied), but reading it (/proc/PID/smaps_rollup) costs kernel time proportional to the
process's mapped memory: ~20 ms for a process with torch loaded. So the sampler reads USS for at most
one process per tick, the one read longest ago, and only while the reads' measured CPU stays under
`fraction` of one core (a token bucket). Small processes are read often, big ones every few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil


def read_uss(pid: int) -> int | None:
    try:
        return int(psutil.Process(pid).memory_full_info().uss)
    except (psutil.Error, AttributeError, NotImplementedError, OSError):
        return None


class UssBudget:
    """Decides which process (if any) gets a USS reading this tick, and reads it."""

    def __init__(self, fraction: float = 0.001, credit_s: float = 0.05,
                 reader: Callable[[int], int | None] = read_uss,
                 clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = time.thread_time) -> None:
        self.fraction, self.credit_s = fraction, credit_s
        self.reader, self.clock, self.cpu_clock = reader, clock, cpu_clock
        self.tokens = credit_s
        self._last = clock()
        self._last_read: dict[int, float] = {}
        self._ok = self._failed = 0
        self.broken = False  # USS not readable here (permissions, platform): stop trying

    def pick(self, pids: list[int]) -> int | None:
        """The pid to read this tick (the one read longest ago), or None when the budget is spent."""
        now = self.clock()
        self.tokens = min(self.credit_s, self.tokens + (now - self._last) * self.fraction)
        self._last = now
        if self.broken or self.tokens <= 0 or not pids:
            return None
        return min(pids, key=lambda p: self._last_read.get(p, float("-inf")))

    def read(self, pid: int) -> int | None:
        """Read `pid`'s USS and charge its CPU time to the budget."""
        c0 = self.cpu_clock()
        value = self.reader(pid)
        self.tokens -= self.cpu_clock() - c0
        self._last_read[pid] = self.clock()
        if value is not None:
            self._ok += 1
        else:  # one failure may be a process that just exited; three and never a success: give up
            self._failed += 1
            self.broken = self._ok == 0 and self._failed >= 3
        return value

    def forget(self, pid: int) -> None:
        self._last_read.pop(pid, None)
