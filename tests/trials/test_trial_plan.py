"""The pure part of --try-fixes: overrides, the plan, the greedy combination, the winner and its code."""

from __future__ import annotations

from typing import Any

import pytest

from cpuwise._schema import GpuStatus, Recording
from cpuwise._trials import CRASHED, OK, Overrides, describe
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.trials import (
    AS_IS,
    COMBINATION,
    FIX,
    UPPER,
    Trial,
    TrialResult,
    conclude,
    next_combination,
    plan,
    rate_of,
    result_of,
    settings_diff,
    steps_for,
)
from cpuwise.report.jsonout import report_dict


def rec_with(workers: int = 0, cores: int = 2, framework: dict[str, Any] | None = None,
             persistent: bool = False, batch: int = 32) -> Recording:
    job: dict[str, Any] = {"dataloaders": [{"num_workers": workers, "batch_size": batch, "pin_memory": False,
                                            "persistent_workers": persistent,
                                            "prefetch_factor": 2 if workers else None, "pid": 1}]}
    if framework:
        job["framework"] = framework
    return Recording(command=["python", "train.py"], started_at="", duration_s=10.0, interval_s=0.1,
                     end_reason="exited", exit_code=0, host={"usable_cores": cores},
                     gpu=GpuStatus(available=False), job_info=job)


def finding(fid: str) -> Finding:
    return Finding(id=fid, title=fid, severity="high", confidence=0.9, summary=fid)


def test_overrides_round_trip_and_are_read_leniently() -> None:
    ov = Overrides(num_workers=2, persistent_workers=True, threads_main=1, replay=4, steps=50)
    assert Overrides.from_json(ov.to_json()) == ov
    assert Overrides.from_json("not json") == Overrides()
    bad = '{"num_workers": "two", "steps": -3, "pin_memory": 1, "bogus": 1}'
    assert Overrides.from_json(bad) == Overrides()
    assert ov.changes() == {"num_workers": 2, "persistent_workers": True, "threads_main": 1, "replay": 4}


def test_merging_and_conflicts() -> None:
    a, b = Overrides(num_workers=2), Overrides(threads_main=1, threads_worker=1)
    assert a.merged(b).changes() == {"num_workers": 2, "threads_main": 1, "threads_worker": 1}
    assert a.conflicts(Overrides(num_workers=4)) and not a.conflicts(b)
    assert describe({}) == "as is"
    assert describe({"num_workers": 2, "cpuwise_data": True}) == "num_workers=2, cpuwise.data DataLoader"


def test_steps_are_sized_from_the_step_time() -> None:
    assert steps_for(0.1, seconds=12) == 120
    assert steps_for(10.0) == 20  # at least enough steps to measure
    assert steps_for(1e-5) == 5000  # at most
    assert steps_for(0.0) == 20


def test_plan_starts_with_as_is_and_the_upper_bound_then_the_named_fixes() -> None:
    trials = plan(rec_with(workers=0), [finding("too_few_workers")], steps=100)
    kinds = [t.kind for t in trials]
    assert kinds[:2] == [AS_IS, UPPER]
    assert trials[0].overrides.changes() == {} and trials[0].overrides.steps == 100
    assert trials[1].overrides.replay > 0
    fixes = {t.change: t.overrides.changes() for t in trials if t.kind == FIX}
    assert fixes["num_workers=2, persistent_workers=True"] == {"num_workers": 2, "persistent_workers": True}
    assert "cpuwise.data DataLoader" in fixes  # a plain torch job may take cpuwise.data's drop-in
    assert all(t.overrides.steps == 100 for t in trials)


def test_plan_for_oversubscription_caps_threads_and_for_startup_keeps_workers() -> None:
    over = plan(rec_with(workers=2, persistent=True), [finding("oversubscribed")], steps=50)
    fixes = [t.overrides.changes() for t in over if t.kind == FIX]
    assert fixes == [{"threads_main": 1, "threads_worker": 1}]
    startup = plan(rec_with(workers=2), [finding("worker_startup")], steps=50)
    assert {"persistent_workers": True} in [t.overrides.changes() for t in startup if t.kind == FIX]


def test_a_healthy_job_gets_only_the_reference_trials() -> None:
    trials = plan(rec_with(workers=2, persistent=True), [finding("healthy")], steps=50)
    assert [t.kind for t in trials] == [AS_IS, UPPER]


def test_framework_jobs_do_not_get_the_torch_drop_in() -> None:
    rec = rec_with(framework={"name": "hf"})
    assert not any(t.overrides.cpuwise_data for t in plan(rec, [finding("too_few_workers")], steps=50))


def result(change: str, kind: str, rate: float | None, changes: dict[str, Any] | None = None,
           status: str = OK) -> TrialResult:
    return TrialResult(change=change, kind=kind, status=status, samples_per_s=rate, changes=changes or {})


def test_the_greedy_combination_starts_from_the_best_and_adds_the_next_helping_fix() -> None:
    results = [result(AS_IS, AS_IS, 100.0), result(UPPER, UPPER, 400.0),
               result("w", FIX, 150.0, {"num_workers": 2}), result("t", FIX, 130.0, {"threads_main": 1}),
               result("p", FIX, 101.0, {"prefetch_factor": 4}),  # does not help: never combined
               result("x", FIX, None, {"batch_size": 64}, status=CRASHED)]
    out = conclude(rec_with(), results, steps=10, repeats=1)  # rates the results in place
    combo = next_combination(out.results, [Overrides(**r.changes) for r in results], steps=10)
    assert combo is not None and combo.kind == COMBINATION
    assert combo.overrides.changes() == {"num_workers": 2, "threads_main": 1}
    tried = [Overrides(**r.changes) for r in results] + [combo.overrides]
    assert next_combination(out.results, tried, steps=10) is None  # nothing new left to combine


def test_one_helping_fix_is_no_combination() -> None:
    results = [result(AS_IS, AS_IS, 100.0), result("w", FIX, 150.0, {"num_workers": 2})]
    out = conclude(rec_with(), results, steps=10, repeats=1)
    assert next_combination(out.results, [], steps=10) is None


def test_conclude_rates_against_as_is_and_the_upper_bound_and_picks_the_fastest_helping() -> None:
    results = [result("w", FIX, 150.0, {"num_workers": 2}), result(UPPER, UPPER, 300.0),
               result(AS_IS, AS_IS, 100.0),
               result("c", COMBINATION, 180.0, {"num_workers": 2, "threads_main": 1}),
               result("bad", FIX, None, {"batch_size": 64}, status=CRASHED)]
    out = conclude(rec_with(), results, steps=10, repeats=3)
    assert [r.kind for r in out.results][:2] == [AS_IS, UPPER]
    assert out.best is not None and out.best.change == "c"
    assert out.best.speedup == pytest.approx(1.8) and out.best.share_of_upper == pytest.approx(0.6)
    assert "num_workers=2" in out.code and "set_num_threads(1)" in out.code
    crashed = next(r for r in out.results if r.status == CRASHED)
    assert crashed.speedup is None


def test_nothing_that_helps_means_no_winner_and_no_code() -> None:
    out = conclude(rec_with(), [result(AS_IS, AS_IS, 100.0), result("w", FIX, 101.0, {"num_workers": 2})],
                   steps=10, repeats=1)
    assert out.best is None and out.code == ""


def test_report_json_carries_the_trials() -> None:
    rec = rec_with()
    out = conclude(rec, [result(AS_IS, AS_IS, 100.0), result(UPPER, UPPER, 300.0),
                         result("num_workers=2", FIX, 150.0, {"num_workers": 2})], steps=10, repeats=1)
    data = report_dict(rec, [finding("too_few_workers")], out)
    trials = data["trials"]
    assert {t["change"] for t in trials} == {AS_IS, UPPER, "num_workers=2"}
    assert all({"change", "samples_per_s", "speedup"} <= set(t) for t in trials)
    assert sum(t["kind"] == UPPER for t in trials) == 1
    assert data["try_fixes"]["best"] == "num_workers=2"


def test_rates_come_from_samples_and_fall_back_to_steps() -> None:
    counted = {"steps": 10, "samples": 320, "seconds": 2.0, "samples_known": True}
    assert rate_of(counted) == (160.0, "samples/s")
    assert rate_of({"steps": 10, "samples": 0, "seconds": 2.0, "samples_known": False}) == (5.0, "steps/s")
    assert rate_of(None) == (None, "samples/s")
    t = Trial("w", Overrides(num_workers=2))
    r = result_of(t, [{"steps": 10, "samples": 100, "seconds": 1.0, "samples_known": True},
                      {"steps": 10, "samples": 300, "seconds": 1.0, "samples_known": True},
                      {"steps": 10, "samples": 200, "seconds": 1.0, "samples_known": True}])
    assert r.samples_per_s == 200.0 and r.rates == [100.0, 300.0, 200.0]
    assert result_of(t, []).status == "no steps"


@pytest.mark.parametrize("framework, fragments", [
    (None, ["- loader = DataLoader(dataset, batch_size=32, num_workers=0)",
            "+ loader = DataLoader(dataset, batch_size=32, num_workers=2, persistent_workers=True)"]),
    ({"name": "lightning", "loader_from": "datamodule"}, ["def train_dataloader(self):",
                                                          "+     return DataLoader(self.train,"]),
    ({"name": "hf"}, ["args = TrainingArguments(", "-     dataloader_num_workers=0,",
                      "+     dataloader_num_workers=2,", "+     dataloader_persistent_workers=True,"]),
    ({"name": "keras", "data": "PyDataset"}, ["workers=2, use_multiprocessing=True"]),
])
def test_the_winning_settings_are_a_diff_in_the_jobs_idiom(framework: dict[str, Any] | None,
                                                           fragments: list[str]) -> None:
    code = settings_diff(rec_with(framework=framework), {"num_workers": 2, "persistent_workers": True})
    for fragment in fragments:
        assert fragment in code, code


def test_the_drop_in_diff_swaps_the_import() -> None:
    code = settings_diff(rec_with(), {"cpuwise_data": True})
    assert "+ from cpuwise.data.adapters.torch import DataLoader" in code


def test_keras_jobs_get_pydataset_workers() -> None:
    rec = rec_with(framework={"name": "keras", "data": "PyDataset", "workers": 1,
                              "use_multiprocessing": False})
    trials = plan(rec, [finding("too_few_workers")], steps=20)
    fixes = [t.overrides.changes() for t in trials if t.kind == FIX]
    assert fixes == [{"num_workers": 2}]


def test_a_trials_workers_reach_every_pydataset(monkeypatch: pytest.MonkeyPatch) -> None:
    from cpuwise.monitor.instrument import trial

    class PyDataset:  # keras.utils.PyDataset's constructor, as user subclasses call it
        def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
            self.workers, self.use_multiprocessing = workers, use_multiprocessing

    class Photos(PyDataset):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)

    monkeypatch.setattr(trial, "OV", Overrides(num_workers=2))
    trial.patch_pydataset(PyDataset)
    ds = Photos(workers=1)
    assert (ds.workers, ds.use_multiprocessing) == (2, True)


def test_thread_caps_with_the_drop_in_need_no_worker_init() -> None:
    code = settings_diff(rec_with(workers=2), {"cpuwise_data": True, "threads_main": 1, "threads_worker": 1})
    assert "worker_init_fn" not in code.replace("no worker_init_fn", "")  # the drop-in refuses one
    assert "torch.set_num_threads(1)" in code
