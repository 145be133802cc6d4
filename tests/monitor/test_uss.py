"""USS readings stay within their CPU budget and rotate over the processes."""

from __future__ import annotations

from cpuwise.monitor.uss import UssBudget


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.cpu = 0.0

    def now(self) -> float:
        return self.t

    def cpu_now(self) -> float:
        return self.cpu


def budget(clock: Clock, cost_s: float, value: int | None = 100) -> UssBudget:
    def reader(pid: int) -> int | None:
        clock.cpu += cost_s
        return value

    return UssBudget(fraction=0.01, credit_s=0.05, reader=reader, clock=clock.now, cpu_clock=clock.cpu_now)


def run(b: UssBudget, clock: Clock, pids: list[int], ticks: int) -> list[int]:
    read = []
    for _ in range(ticks):
        clock.t += 0.1
        pid = b.pick(pids)
        if pid is not None:
            b.read(pid)
            read.append(pid)
    return read


def test_cheap_reads_rotate_over_every_process() -> None:
    clock = Clock()
    read = run(budget(clock, cost_s=0.0001), clock, [1, 2, 3], ticks=9)
    assert read == [1, 2, 3] * 3


def test_expensive_reads_are_rationed_to_the_budget() -> None:
    clock = Clock()
    b = budget(clock, cost_s=0.02)  # a torch-sized process
    read = run(b, clock, [1, 2], ticks=1000)  # 100 s at 1 % of a core: ~1 s of reads, plus the credit
    assert 45 <= len(read) <= 55
    assert abs(read.count(1) - read.count(2)) <= 1


def test_unreadable_uss_stops_being_tried() -> None:
    clock = Clock()
    b = budget(clock, cost_s=0.0, value=None)
    run(b, clock, [1], ticks=5)
    assert b.broken and b.pick([1]) is None


def test_a_process_copying_pages_is_read_before_a_quiet_one() -> None:
    clock = Clock()
    b = budget(clock, cost_s=0.0001)
    assert run(b, clock, [1, 2], ticks=2) == [1, 2]  # 1 was read first, so it waited longest since
    clock.t += 1.0
    assert b.pick([1, 2], {1: 10, 2: 100_000}) == 2  # 2 took ~400 MB of minor faults (copied pages)
    assert b.pick([1, 2], {1: 10, 2: 0}) == 1


def test_real_private_memory_of_this_process_is_read_from_smaps_rollup() -> None:
    import os

    from cpuwise.monitor.uss import read_private

    value = read_private(os.getpid())
    assert value is not None and value > 1 << 20
    assert read_private(1 << 22) is None  # no such process
