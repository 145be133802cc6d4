"""The autotuner's pure decision, table-driven, and its online effect."""

from __future__ import annotations

import logging

import pytest

import cpuwise.data as cd
from cpuwise.data._runtime.autotune import MapSample, TuneStats, pick_config, share
from cpuwise.data._runtime.budget import Budget

GiB = 2**30


def m(workers: int, items: int, work_s: float, tuned: bool = True, name: str = "map(f)",
      item_bytes: int = 0) -> MapSample:
    return MapSample(name, tuned, workers, items, work_s, item_bytes)


# (case, stats, budget cores, expected workers, expected prefetch)
CASES = [
    ("consumer starved, cores free: grow to the estimate",
     TuneStats(1.0, 0.6, (m(1, 100, 1.2),), True, 2), 8, (4,), 2),
    ("many workers: prefetch half of them, at most 8",
     TuneStats(1.0, 0.6, (m(1, 100, 30.0),), True, 2), 32, (32,), 8),
    ("consumer starved, estimate low: still grow by one",
     TuneStats(1.0, 0.2, (m(2, 100, 0.5),), False, 2), 8, (3,), 2),
    ("consumer starved, budget used: stay at the cap",
     TuneStats(1.0, 0.9, (m(2, 100, 5.0),), False, 2), 2, (2,), 2),
    ("consumer never waits, fewer workers suffice: shrink by one",
     TuneStats(1.0, 0.0, (m(6, 100, 1.0),), False, 2), 8, (5,), 2),
    ("consumer never waits, all workers needed: keep",
     TuneStats(1.0, 0.0, (m(3, 100, 2.9),), False, 2), 8, (3,), 2),
    ("between the bands: keep",
     TuneStats(1.0, 0.03, (m(3, 100, 1.0),), False, 2), 8, (3,), 2),
    ("pinned maps count against the budget and never change",
     TuneStats(1.0, 0.5, (m(3, 100, 9.0, tuned=False, name="a"), m(1, 100, 9.0, name="b")), False, 2),
     4, (3, 1), 2),
    ("two tuned maps share the free cores by need",
     TuneStats(1.0, 0.5, (m(1, 100, 3.0, name="a"), m(1, 100, 1.0, name="b")), False, 2), 4, (3, 1), 2),
    ("a map's own cpu_budget caps its workers",
     TuneStats(1.0, 0.6, (MapSample("map(f)", True, 1, 100, 4.0, 0, 2),), False, 2), 8, (2,), 2),
    ("prefetch depth is capped by the RAM budget",
     TuneStats(1.0, 0.5, (m(1, 100, 4.0),), True, 2, 300 * 2**20), 8, (8,), 1),
]


@pytest.mark.parametrize("case,stats,cores,workers,prefetch", CASES, ids=[c[0] for c in CASES])
def test_pick_config(case: str, stats: TuneStats, cores: int, workers: tuple[int, ...],
                     prefetch: int) -> None:
    cfg = pick_config(stats, Budget(float(cores), 1 * GiB))
    assert cfg.workers == workers, cfg.why
    assert cfg.prefetch == prefetch, cfg.why
    assert cfg.why  # every decision carries its reason
    assert sum(w for w, s in zip(cfg.workers, stats.maps, strict=True) if s.tuned) <= cores


def test_pick_config_is_pure() -> None:
    stats = TuneStats(1.0, 0.5, (m(1, 100, 3.0),))
    assert pick_config(stats, Budget(4.0, GiB)) == pick_config(stats, Budget(4.0, GiB))


@pytest.mark.parametrize("want,free,expected", [
    ({"a": 969}, 2, {"a": 2}),
    ({"a": 3, "b": 1}, 2, {"a": 1, "b": 1}),
    ({"a": 5, "b": 5}, 5, {"a": 3, "b": 2}),
    ({"a": 1, "b": 1}, 8, {"a": 1, "b": 1}),
])
def test_share(want: dict[str, int], free: int, expected: dict[str, int]) -> None:
    assert share(want, free) == expected


def test_online_tuning_logs_decisions_and_keeps_order(caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from cpuwise.data._runtime import iterator as pipeline

    monkeypatch.setattr(pipeline, "TUNE_FIRST_S", 0.0)
    monkeypatch.setattr(pipeline, "TUNE_INTERVAL_S", 0.02)

    def slow(x: int) -> int:
        time.sleep(0.002)
        return x

    ds = cd.from_sequence(list(range(400))).map(slow, backend="thread").with_budget(cpu_budget=2)
    with caplog.at_level(logging.INFO, logger="cpuwise.data"):
        assert list(ds) == list(range(400))  # resizing never reorders or drops
    st = ds.stats()
    assert st["decisions"][0]["why"].startswith("start:")
    assert all({"t", "config", "why"} <= set(d) for d in st["decisions"])
    assert any("autotune" in r.message for r in caplog.records)
    assert 1 <= st["config"]["workers"] <= 2


def test_pinned_workers_are_never_tuned(monkeypatch: pytest.MonkeyPatch) -> None:
    from cpuwise.data._runtime import iterator as pipeline

    monkeypatch.setattr(pipeline, "TUNE_FIRST_S", 0.0)
    monkeypatch.setattr(pipeline, "TUNE_INTERVAL_S", 0.0)
    ds = cd.from_sequence(list(range(300))).map(abs, workers=1, backend="thread")
    assert list(ds) == list(range(300))
    assert ds.stats()["config"]["workers"] == 1 and len(ds.stats()["decisions"]) == 1


def test_resizing_a_process_pool_mid_epoch_keeps_order_and_exactly_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import itertools

    from engine_fns import slow_array

    from cpuwise.data._runtime import autotune
    from cpuwise.data._runtime import iterator as pipeline

    sizes = itertools.cycle([1, 2, 1, 2, 2, 1])

    def flapping(stats: TuneStats, budget: Budget) -> autotune.Config:
        return autotune.Config(tuple(next(sizes) for _ in stats.maps), 2, (), "test: flap")

    monkeypatch.setattr(pipeline, "TUNE_FIRST_S", 0.0)
    monkeypatch.setattr(pipeline, "TUNE_INTERVAL_S", 0.03)
    monkeypatch.setattr(autotune, "pick_config", flapping)
    base = cd.from_sequence(list(range(160))).map(slow_array, backend="process")
    with base.with_budget(cpu_budget=2) as ds:
        for _ in range(2):
            labels = [y for _, y in ds]
            assert labels == list(range(160))
        assert sum(1 for d in ds.stats()["decisions"] if d["why"] == "test: flap") >= 4
