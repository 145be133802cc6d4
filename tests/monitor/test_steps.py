"""Steps from channel `next` records: pairing, end markers, source priority, sync (table-driven)."""

from __future__ import annotations

import pytest

from cpuwise.monitor.steps import build_steps, pick_source


def nxt(a: float, b: float, *, pid: int = 1, src: str = "dataloader", it: int = 1, end: bool = False,
        sync: float = 0.0) -> dict[str, object]:
    return {"k": "next", "pid": pid, "a": a, "b": b, "src": src, "it": it, "end": end, "sync": sync}


def test_step_i_runs_from_delivery_i_to_delivery_i_plus_1() -> None:
    evs = [nxt(10.0, 10.5), nxt(11.0, 11.1), nxt(12.0, 12.0)]
    steps = build_steps(evs, t0=10.0)
    assert [(s.index, s.t_start) for s in steps] == [(0, 0.0), (1, 1.0)]
    assert steps[0].data_wait_s == pytest.approx(0.5) and steps[0].compute_s == pytest.approx(0.5)
    assert steps[1].data_wait_s == pytest.approx(0.1) and steps[1].compute_s == pytest.approx(0.9)


def test_sync_reported_before_the_next_call_is_split_from_compute_and_capped() -> None:
    steps = build_steps([nxt(0, 0), nxt(1.0, 1.0, sync=0.25), nxt(1.5, 1.5, sync=5.0)], t0=0)
    assert steps[0].sync_s == pytest.approx(0.25) and steps[0].compute_s == pytest.approx(0.75)
    assert steps[1].sync_s == pytest.approx(0.5) and steps[1].compute_s == pytest.approx(0.0)


def test_end_marker_closes_the_last_step_and_opens_none() -> None:
    evs = [nxt(0, 0.1, it=1), nxt(1, 1.1, it=1), nxt(2, 2.0, it=1, end=True), nxt(5, 5.1, it=2),
           nxt(6, 6.1, it=2)]
    steps = build_steps(evs, t0=0)
    assert [s.t_start for s in steps] == [0, 1, 5]  # no step spans the gap between the epochs


def test_iterators_and_processes_are_paired_separately() -> None:
    evs = [nxt(0, 0, it=1), nxt(0.5, 0.5, it=2), nxt(1, 1, it=1), nxt(1.5, 1.5, it=2),
           nxt(0, 0, pid=2, it=1), nxt(3, 3, pid=2, it=1)]
    steps = build_steps(evs, t0=0)
    assert sorted((s.pid, s.t_start, s.total_s) for s in steps) == [(1, 0, 1), (1, 0.5, 1), (2, 0, 3)]


@pytest.mark.parametrize("sources, expected", [
    (["dataloader"], "dataloader"),
    (["dataloader", "cpuwise.data"], "cpuwise.data"),
    (["dataloader", "cpuwise.data", "watch"], "watch"),
    ([], None),
])
def test_the_most_explicit_source_wins(sources: list[str], expected: str | None) -> None:
    evs = [nxt(i, i, src=s) for i, s in enumerate(sources)]
    assert pick_source(evs) == expected


def test_out_of_order_records_are_sorted() -> None:
    steps = build_steps([nxt(2, 2), nxt(0, 0), nxt(1, 1)], t0=0)
    assert [s.t_start for s in steps] == [0, 1]
