"""Steps: paired where they happen (the channel), summarised per lane and interval (the doctor): pairing,
end markers, source priority, sync, exact totals and bounded memory however many steps (table-driven)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cpuwise import _channel as channel
from cpuwise import _steps
from cpuwise._schema import StepLane, StepRecord
from cpuwise.monitor.events import ChannelReader
from cpuwise.monitor.steps import StepCollector, pick_source


@pytest.fixture()
def chan(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "channel.jsonl"
    channel.set_path(str(path))
    yield path
    channel.set_path(None)


def collect(path: Path, t0: float = 0.0) -> StepCollector:
    channel.flush()
    c = StepCollector(t0)
    for r in ChannelReader(path).read_new():
        if r.get("k") == "steps":
            c.ingest(r)
    return c


def calls(*spec: tuple[float, float] | tuple[float, float, dict[str, object]]) -> None:
    for item in spec:
        a, b, kw = item if len(item) == 3 else (*item, {})  # type: ignore[misc]
        sync = kw.pop("sync", None)
        if sync is not None:
            channel.add_sync(float(sync))  # type: ignore[arg-type]
        channel.note_next(a, b, **kw)  # type: ignore[arg-type]


def test_step_i_runs_from_delivery_i_to_delivery_i_plus_1(chan: Path) -> None:
    calls((10.0, 10.5), (11.0, 11.1), (12.0, 12.0))
    lanes, sample = collect(chan, t0=10.0).lanes()
    assert [(s.index, s.t_start) for s in sample] == [(0, 0.0), (1, 1.0)]
    assert sample[0].data_wait_s == pytest.approx(0.5) and sample[0].compute_s == pytest.approx(0.5)
    assert sample[1].data_wait_s == pytest.approx(0.1) and sample[1].compute_s == pytest.approx(0.9)
    (lane,) = lanes
    assert lane.n == 2 and lane.data_wait_s == pytest.approx(0.6) and lane.end_t == pytest.approx(2.0)


def test_sync_reported_before_the_next_call_is_split_from_compute_and_capped(chan: Path) -> None:
    calls((0.0, 0.0), (1.0, 1.0, {"sync": 0.25}), (1.5, 1.5, {"sync": 5.0}))
    _, steps = collect(chan).lanes()
    assert steps[0].sync_s == pytest.approx(0.25) and steps[0].compute_s == pytest.approx(0.75)
    assert steps[1].sync_s == pytest.approx(0.5) and steps[1].compute_s == pytest.approx(0.0)


def test_end_marker_closes_the_last_step_and_opens_none(chan: Path) -> None:
    calls((0, 0.1, {"stream": 1}), (1, 1.1, {"stream": 1}), (2, 2.0, {"stream": 1, "end": True}),
          (5, 5.1, {"stream": 2}), (6, 6.1, {"stream": 2}))
    lanes, steps = collect(chan).lanes()
    assert [s.t_start for s in steps] == [0, 1, 5]  # no step spans the gap between the epochs
    assert [s.epoch_start for s in steps] == [True, False, True]
    assert lanes[0].epoch_starts == 2 and lanes[0].epoch_start_wait_s == pytest.approx(0.2)


def test_iterators_are_paired_separately(chan: Path) -> None:
    calls((0, 0, {"stream": 1}), (0.5, 0.5, {"stream": 2}), (1, 1, {"stream": 1}), (1.5, 1.5, {"stream": 2}))
    _, steps = collect(chan).lanes()
    assert sorted((s.t_start, s.total_s) for s in steps) == [(0, 1), (0.5, 1)]


@pytest.mark.parametrize("sources, expected", [
    ({"dataloader"}, "dataloader"),
    ({"dataloader", "cpuwise.data"}, "cpuwise.data"),
    ({"dataloader", "lightning"}, "lightning"),
    ({"dataloader", "cpuwise.data", "watch", "keras"}, "watch"),
    (set(), None),
])
def test_the_most_explicit_source_wins(sources: set[str], expected: str | None) -> None:
    assert pick_source(sources) == expected


def test_only_the_chosen_sources_lanes_are_kept(chan: Path) -> None:
    for i in range(3):
        channel.note_next(float(i), float(i), source="dataloader", stream=1)
        channel.note_next(float(i), float(i) + 0.1, source="watch", stream=2)
    c = collect(chan)
    lanes, steps = c.lanes()
    assert c.source() == "watch" and [lane.source for lane in lanes] == ["watch"]
    assert steps and all(s.data_wait_s == pytest.approx(0.1) for s in steps)


def test_a_million_steps_keep_exact_totals_in_bounded_memory(chan: Path) -> None:
    # 1e6 steps of 1 ms (wait 0.25 ms) over 1000 s: totals exact, intervals and sample bounded.
    t = 0.0
    for _ in range(1_000_000):
        channel.note_next(t, t + 0.00025, source="dataloader")
        t += 0.001
    lanes, sample = collect(chan).lanes()
    (lane,) = lanes
    assert lane.n == 999_999  # the last delivery opens a step that never ends
    assert lane.data_wait_s == pytest.approx(0.25 * 999_999e-3, rel=1e-6)
    assert lane.compute_s == pytest.approx(0.75 * 999_999e-3, rel=1e-6)
    assert len(lane.intervals) <= _steps.MAX_INTERVALS
    assert sum(iv.n for iv in lane.intervals) == lane.n
    assert len(sample) <= _steps.HEAD_STEPS + _steps.TAIL_STEPS + _steps.RESERVOIR_STEPS
    assert [s.index for s in sample[:3]] == [0, 1, 2]
    iv = lane.intervals[len(lane.intervals) // 2]
    assert iv.p50_s == pytest.approx(0.001, rel=0.07) and iv.max_s == pytest.approx(0.001)


@pytest.mark.parametrize("seconds", [3e-7, 1e-6, 0.0123, 1.0, 7.5, 5000.0])
def test_histogram_bins_hold_their_values(seconds: float) -> None:
    i = channel.bin_of(seconds)
    lo, hi = channel.bin_bounds(i)
    assert 0 <= i < channel.HIST_BINS
    if 2.0**channel.HIST_MIN_EXP < seconds < 2.0**12:
        assert lo <= seconds < hi and (hi - lo) / lo <= 1 / channel.HIST_BINS_PER_OCTAVE + 1e-12


def test_summarise_of_whole_steps_matches_their_sums() -> None:
    steps = [StepRecord(index=i, t_start=0.1 * i, data_wait_s=0.02, compute_s=0.08, pid=7) for i in range(50)]
    (lane,) = _steps.summarise(steps)
    assert isinstance(lane, StepLane) and lane.n == 50 and lane.pid == 7
    assert lane.data_wait_s == pytest.approx(1.0) and lane.end_t == pytest.approx(5.0)
    assert sum(iv.n for iv in lane.intervals) == 50
