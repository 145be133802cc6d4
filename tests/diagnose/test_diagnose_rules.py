"""The rules, table-driven over synthetic recordings (cpuwise.testing.recordings) and hand-edited ones."""

from __future__ import annotations

import copy

import pytest

from cpuwise._schema import END_CRASHED, END_NOT_FOUND, Recording
from cpuwise.diagnose import diagnose, verdict
from cpuwise.diagnose.evidence import band
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import measure, step_stats
from cpuwise.diagnose.registry import finding_ids
from cpuwise.diagnose.rules.input_bound import workers_needed
from cpuwise.testing.recordings import PRESETS, fake_recording

FINDING_IDS = finding_ids()


@pytest.mark.parametrize(
    ("preset", "overrides", "expected"),
    [
        # 2 cores, 2 DataLoader workers saturating both, main waits ~60 % of each step.
        ("input_bound", {}, "input_bound_cpu_saturated"),
        # ... also when the doctor and a neighbour take a third of a core.
        ("input_bound", {"other_cpu": 0.35, "seed": 3}, "input_bound_cpu_saturated"),
        # Pure compute loop, no data-wait: healthy, even on a busy shared machine (long run queue,
        # preemption by neighbours) since the job's own thread pools fit the cores.
        ("compute", {}, "healthy"),
        ("compute", {"runqueue": 9.0, "inv_cs_per_core_s": 600.0}, "healthy"),
        # 2 worker processes each with an 8-thread BLAS pool on 2 cores.
        ("oversubscribed", {}, "oversubscribed"),
        ("too_few_workers", {}, "too_few_workers"),
        ("io_bound", {}, "io_bound"),
        ("gpu_underused", {}, "gpu_underused"),
        ("sync_stalls", {}, "sync_stalls"),
        ("memory_growth", {}, "memory_growth"),
        ("swap", {}, "swap"),
        ("hung", {}, "hung"),
        ("crashed", {}, "crashed"),
        ("no_steps", {}, "healthy"),
        ("pipeline", {}, "input_bound_cpu_saturated"),
        ("input_bound", {"steps": 4}, "insufficient_data"),
    ],
)
def test_verdict(preset: str, overrides: dict[str, object], expected: str) -> None:
    findings = diagnose(fake_recording(preset, **overrides))
    assert verdict(findings) == expected, [(f.id, f.severity) for f in findings]
    assert findings[0].id == expected


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_finding_is_complete(preset: str) -> None:
    rec = fake_recording(preset)
    findings = diagnose(rec)
    assert findings, "diagnose must never return an empty list"
    for f in findings:
        assert f.id in FINDING_IDS
        assert f.summary and f.evidence and f.fix
        assert 0 < f.confidence <= 1
        assert Finding.from_dict(f.to_dict()) == f
    assert Recording.from_dict(rec.to_dict()) == rec


@pytest.mark.parametrize(
    ("share", "expected"),
    [(0.0, None), (0.049, None), (0.05, "moderate"), (0.19, "moderate"), (0.20, "high"), (0.9, "high")],
)
def test_tf_profiler_bands(share: float, expected: str | None) -> None:
    assert band(share) == expected


@pytest.mark.parametrize(("wait_s", "severity"), [(0.010, "moderate"), (0.060, "high")])
def test_input_bound_severity_follows_the_band(wait_s: float, severity: str) -> None:
    f = diagnose(fake_recording("input_bound", wait_s=wait_s, compute_s=0.09))[0]
    assert f.id == "input_bound_cpu_saturated" and f.severity == severity


def test_too_few_workers_names_the_number() -> None:
    # 4 cores, 1 busy worker, main waits ~60 %: one producer per (step - wait) needs ceil(1 / 0.4) = 3.
    f = diagnose(fake_recording("too_few_workers"))[0]
    assert f.id == "too_few_workers"
    assert "num_workers to 3" in f.fix and "num_workers=3" in f.fix_code


@pytest.mark.parametrize(
    ("workers", "share", "cores", "expected"),
    [(1, 0.6, 4, 3), (2, 0.5, 8, 4), (0, 0.6, 4, 2), (0, 0.9, 4, 4), (2, 0.9, 4, 4), (1, 0.1, 4, 2)],
)
def test_workers_needed(workers: int, share: float, cores: int, expected: int) -> None:
    m = measure(fake_recording("too_few_workers", cores=cores))
    assert workers_needed(workers, share, m) == expected


def test_no_workers_main_process_loads() -> None:
    f = diagnose(fake_recording("too_few_workers", workers=0, main_cpu=1.0))[0]
    assert f.id == "too_few_workers" and "from 0 to" in f.summary


def test_oversubscription_needs_more_than_configured_pools() -> None:
    # numpy's default pool (= cores) in 2 workers on 2 cores: a remark, not a problem.
    rec = fake_recording("compute", worker_threads=2)
    findings = diagnose(rec)
    assert verdict(findings) == "healthy"
    over = [f for f in findings if f.id == "oversubscribed"]
    assert over and over[0].severity == "info"
    # A torch pool larger than the cgroup's cores is a misconfiguration even without contention.
    findings = diagnose(fake_recording("compute", main_threads=16))
    assert findings[0].id == "oversubscribed" and findings[0].severity == "moderate"
    assert "set_num_threads(2)" in findings[0].fix_code


def test_oversubscription_without_pool_report_needs_runtime_evidence() -> None:
    rec = fake_recording("oversubscribed")
    rec.job_info.pop("thread_pools")
    f = next(f for f in diagnose(rec) if f.id == "oversubscribed")
    assert f.severity == "moderate" and any("run queue" in e for e in f.evidence)


def test_gpu_underused_is_explained_by_input_bound() -> None:
    # An idle GPU next to a highly input-bound loop is the input pipeline's fault: one finding only.
    findings = diagnose(fake_recording("input_bound", gpu=True, gpu_util=20.0))
    assert [f.id for f in findings] == ["input_bound_cpu_saturated"]
    assert "GPU" in findings[0].fix_code  # GPU decode offered when a GPU is there


def test_gpu_underused_suggests_bigger_batch_with_headroom() -> None:
    f = diagnose(fake_recording("gpu_underused"))[0]
    assert "batch_size=128" in f.fix_code and any("memory" in e for e in f.evidence)


def test_no_steps_still_diagnoses_from_samples() -> None:
    rec = fake_recording("no_steps", gpu=True, gpu_util=15.0, main_cpu=2.0)
    f = diagnose(rec)[0]
    assert f.id == "input_bound_cpu_saturated" and f.confidence <= 0.5
    assert any("step split unavailable" in e for e in f.evidence)
    healthy = diagnose(fake_recording("no_steps"))[0]
    assert healthy.id == "healthy" and "step split is unavailable" in healthy.summary


def test_pipeline_stats_are_evidence_and_fill_in_for_steps() -> None:
    rec = fake_recording("pipeline")
    f = diagnose(rec)[0]
    assert any("slowest stage 'decode_crop'" in e for e in f.evidence)
    assert "decode_crop" in f.fix
    rec.steps = []  # cpuwise.data's consumer_wait_ratio stands in for the step split
    f = diagnose(rec)[0]
    assert f.id == "input_bound_cpu_saturated"
    assert any("consumer_wait_ratio" in e for e in f.evidence)


def test_hung_names_openmp_before_fork_only_when_stacks_show_it() -> None:
    f = diagnose(fake_recording("hung"))[0]
    assert f.id == "hung" and "OpenMP" in f.title and "forkserver" in f.fix_code
    assert any("no progress" in e for e in f.evidence)
    plain = diagnose(fake_recording("hung", stacks={"1000": "Thread 1\n    wait (threading.py:320)\n"}))[0]
    assert plain.id == "hung" and "OpenMP" not in plain.title
    assert any("threading.py:320" in e for e in plain.evidence)


def test_crashed_quotes_the_exception_and_leads() -> None:
    findings = diagnose(fake_recording("crashed"))
    assert findings[0].id == "crashed"
    assert "RuntimeError: mat1 and mat2" in findings[0].summary
    killed = fake_recording("crashed", exit_code=-9, exception=None)
    assert "SIGKILL" in diagnose(killed)[0].summary


def test_not_found_is_insufficient_data() -> None:
    rec = fake_recording("input_bound")
    rec.end_reason, rec.exit_code, rec.steps, rec.system, rec.processes = END_NOT_FOUND, 127, [], [], []
    f = diagnose(rec)
    assert [x.id for x in f] == ["insufficient_data"] and "could not be started" in f[0].summary


def test_crash_before_any_sample_is_still_one_finding() -> None:
    rec = fake_recording("crashed")
    rec.end_reason, rec.steps, rec.system, rec.processes = END_CRASHED, [], [], []
    assert verdict(diagnose(rec)) == "crashed"


def test_warmup_steps_are_skipped() -> None:
    # The synthetic job's first 2 steps wait 0.8 s each for worker start-up; counted, they would make a
    # compute-bound job look input-bound.
    rec = fake_recording("compute")
    assert step_stats(rec.steps, warmup=0).wait_share > 0.05  # type: ignore[union-attr]
    assert measure(rec).steps.skipped == 2  # type: ignore[union-attr]
    assert verdict(diagnose(rec)) == "healthy"
    # Too few steps to spare any: all are used.
    assert step_stats(rec.steps[:5]).skipped == 0  # type: ignore[union-attr]


def test_memory_growth_in_one_worker_only() -> None:
    rec = fake_recording("memory_growth")
    base = copy.deepcopy(rec)
    for p in rec.processes:
        if p.pid == 1002 and p.uss_bytes is not None:  # only worker 1001 keeps growing
            first = next(q for q in base.processes if q.pid == 1002)
            p.uss_bytes, p.rss_bytes = first.uss_bytes, first.rss_bytes
    f = diagnose(rec)[0]
    assert f.id == "memory_growth" and f.severity == "moderate" and len(f.evidence) == 1
    assert "1001" in f.evidence[0]


def test_thresholds_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from cpuwise.diagnose import thresholds

    rec = fake_recording("input_bound")
    assert diagnose(rec)[0].severity == "high"
    monkeypatch.setattr(thresholds, "INPUT_BOUND_HIGH", 0.9)
    assert diagnose(rec)[0].severity == "moderate"
