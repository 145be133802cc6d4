"""`cpuwise.watch()` standalone (its own recording) and under the doctor (through the channel)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import cpuwise
from cpuwise import _channel as channel
from cpuwise.monitor.events import ChannelReader, JobState


def slow_items(n: int, wait_s: float):  # type: ignore[no-untyped-def]
    for i in range(n):
        time.sleep(wait_s)
        yield i


def test_standalone_iter_records_steps_with_data_wait_and_samples() -> None:
    with cpuwise.watch(interval=0.02, gpu=False) as w:
        for _ in w.iter(slow_items(6, 0.03)):
            time.sleep(0.01)
    rec = w.recording
    assert rec is not None and rec.end_reason == "exited"
    assert len(rec.steps) == 6 and rec.job_info["step_source"] == "watch"
    assert all(s.data_wait_s >= 0.025 for s in rec.steps)
    assert all(s.compute_s >= 0.008 for s in rec.steps)
    assert rec.processes and rec.processes[0].role == "main"
    assert not rec.gpu.available and "gpu=False" in rec.gpu.reason
    assert not channel.ACTIVE  # the watch gave the channel back


def test_standalone_step_marks_and_a_crash_is_recorded() -> None:
    w = cpuwise.watch(interval=0.05, gpu=False)
    with pytest.raises(ZeroDivisionError):
        with w:
            for _ in range(4):
                time.sleep(0.01)
                w.step()
            1 / 0  # noqa: B018
    rec = w.recording
    assert rec is not None and len(rec.steps) == 4 and rec.end_reason == "crashed"
    assert "ZeroDivisionError" in rec.job_info["python_exception"]


def test_under_the_doctor_steps_go_to_the_channel(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    channel.set_path(str(path))
    try:
        with cpuwise.watch() as w:
            for _ in range(3):
                w.step()
        assert w.recording is None and w.report(tmp_path / "r") == {}
    finally:
        channel.set_path(None)
    st = JobState()
    st.ingest(ChannelReader(path).read_new())
    (lane,), _ = st.steps.lanes()
    assert lane.n == 3
    assert any(p["role"] == "main" for p in st.job_info["thread_pools"].values())


def test_report_before_the_block_ends_is_a_clear_error() -> None:
    w = cpuwise.watch(gpu=False)
    with w:
        with pytest.raises(cpuwise.ConfigError, match="after the `with"):
            w.report("x")
