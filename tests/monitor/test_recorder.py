"""The recorder with scripted fake backends: samples, vanishing processes, sampler errors, fill."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpuwise import _channel as channel
from cpuwise._schema import GpuSample, GpuStatus, Recording
from cpuwise.monitor.fake import FakeGpuBackend, FakeProcessBackend, FakeSystemBackend, proc, system
from cpuwise.monitor.recorder import Recorder
from cpuwise.monitor.runner import _hung


def blank() -> Recording:
    return Recording(command=["x"], started_at="", duration_s=0, interval_s=0.1, end_reason="exited",
                     exit_code=0, host={}, gpu=GpuStatus(available=False))


def gpu(util: float) -> GpuSample:
    return GpuSample(t=0, index=0, util_percent=util, mem_used_bytes=1, mem_total_bytes=2, power_w=100.0,
                     sm_clock_mhz=1500.0, sm_activity_percent=util / 2)


def test_ticks_record_every_backend_and_a_vanished_worker_is_just_absent() -> None:
    procs = FakeProcessBackend([
        [proc(10, cpu=100), proc(11, cpu=90, role="worker", ppid=10)],
        [proc(10, cpu=100)],  # the worker exited between samples
        [proc(10, cpu=50)],
    ])
    r = Recorder(procs, FakeSystemBackend([None, system([90, 80]), system([50, 40])]),
                 FakeGpuBackend([[gpu(30)], [gpu(40)], [gpu(50)]]), interval=0.1)
    for _ in range(3):
        r.tick()
    rec = r.fill(blank())
    assert [(p.pid, p.cpu_percent) for p in rec.processes] == [(10, 100), (11, 90), (10, 100), (10, 50)]
    assert len(rec.system) == 2 and [g.util_percent for g in rec.gpus] == [30, 40, 50]
    assert rec.gpu.available and rec.notes == []
    assert r.tree_cpu_percent(1e9) == pytest.approx((190 + 100 + 50) / 3)


def test_a_failing_sampler_is_noted_once_and_sampling_goes_on() -> None:
    procs = FakeProcessBackend([RuntimeError("proc table changed"), RuntimeError("proc table changed"),
                                [proc(10, cpu=5)]])
    r = Recorder(procs, FakeSystemBackend([system([1.0])]), FakeGpuBackend(), interval=0.1)
    for _ in range(3):
        r.tick()
    rec = r.fill(blank())
    assert len(rec.processes) == 1 and len(rec.system) == 3
    assert rec.notes == ["process sampler error: RuntimeError: proc table changed"]
    assert not rec.gpu.available and rec.gpu.reason == "fake: no GPU"


def test_thread_samples_at_the_interval_and_stop_closes_the_gpu(tmp_path: Path) -> None:
    gpu_backend = FakeGpuBackend([[gpu(10)]])
    r = Recorder(FakeProcessBackend([[proc(1)]]), FakeSystemBackend([system([0.0])]), gpu_backend,
                 interval=0.05).start()
    import time

    deadline = time.monotonic() + 30  # a bound on waiting: the recorder paces itself within its budget
    while len(r.processes) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    r.stop()
    assert len(r.processes) >= 5 and gpu_backend.closed


def test_channel_records_become_steps_and_job_info(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    channel.set_path(str(path))
    try:
        r = Recorder(FakeProcessBackend([[proc(1)]]), FakeSystemBackend([None]), FakeGpuBackend(),
                     channel_path=path, t0=100.0)
        for i in range(4):
            channel.note_next(100.0 + i, 100.2 + i, source="dataloader", stream=1)
        channel.emit("role", {"role": "worker"})
        r.tick()
        rec = r.fill(blank())
    finally:
        channel.set_path(None)
    assert len(rec.steps) == 3 and rec.job_info["step_source"] == "dataloader"
    assert [lane.n for lane in rec.step_lanes] == [3]
    assert rec.steps[0].data_wait_s == pytest.approx(0.2) and rec.steps[2].t_start == pytest.approx(2.0)
    assert r.last_progress() == pytest.approx(3.2)


@pytest.mark.parametrize("cpu, progress_at, now, expected", [
    (1.0, None, 5.0, True),     # never a step, idle for longer than the timeout
    (1.0, 4.5, 5.0, False),     # a step half a second ago
    (150.0, None, 5.0, False),  # busy: still importing / computing
    (1.0, None, 0.5, False),    # not yet past the timeout
])
def test_hang_needs_no_progress_for_the_timeout_and_an_idle_cpu(
        cpu: float, progress_at: float | None, now: float, expected: bool) -> None:
    r = Recorder(FakeProcessBackend([[proc(1, cpu=cpu)]]), FakeSystemBackend([None]), FakeGpuBackend(),
                 t0=0.0)
    r.tick()
    r.now = lambda: now  # type: ignore[method-assign]
    r.state.last_progress = progress_at
    assert _hung(r, hang_timeout=2.0) is expected


def test_long_recordings_are_thinned_to_bounded_memory() -> None:
    r = Recorder(FakeProcessBackend([[proc(1), proc(2, role="worker")]]), FakeSystemBackend([system([1.0])]),
                 FakeGpuBackend(), interval=0.1, max_ticks=10)
    clock = iter(range(1000))
    r.now = lambda: float(next(clock))  # type: ignore[method-assign]
    for _ in range(25):
        r.tick()
    rec = r.fill(blank())
    ticks = sorted({s.t for s in rec.system})
    assert len(ticks) <= 10 and len(rec.processes) == 2 * len(ticks)
    assert ticks[-1] == 24.0 and rec.interval_s == pytest.approx(0.8)  # thinned three times
    assert [n for n in rec.notes if "interval raised" in n] == [
        "sampling interval raised to 0.8 s to bound memory (at most 10 samples kept)"]


class BudgetedBackend(FakeProcessBackend):
    """A process sampler that can be given a private-memory budget (as the /proc one)."""

    def __init__(self, n: int) -> None:
        super().__init__([[proc(i) for i in range(1, n + 1)]])
        self.fractions: list[float] = []
        self.private_cpu_s = 0.0

    def private_budget(self, fraction: float) -> None:
        self.fractions.append(fraction)


def test_the_recorder_keeps_its_cpu_within_the_budget_by_sampling_less_often() -> None:
    from cpuwise.monitor.recorder import REGULAR_SHARE, sampler_budget

    backend = BudgetedBackend(3)
    r = Recorder(backend, FakeSystemBackend([None]), FakeGpuBackend(), interval=0.1)
    r.tick()
    assert r._pace(0.0001) == pytest.approx(0.1)  # a cheap tick: the interval as asked
    assert backend.fractions[-1] == pytest.approx(sampler_budget(3) - 0.0001 / 0.1, rel=0.05)
    for _ in range(30):  # ticks of 5 ms: 5 % of a core at 0.1 s, over the budget
        step = r._pace(0.005)
    assert step == pytest.approx(0.005 / (REGULAR_SHARE * sampler_budget(3)), rel=0.05) and step > 0.5
    assert backend.fractions[-1] == pytest.approx((1 - REGULAR_SHARE) * sampler_budget(3), rel=0.05)
    assert sampler_budget(30) == pytest.approx(3 * sampler_budget(10))  # 1 % per 10 processes (aim 0.85)
