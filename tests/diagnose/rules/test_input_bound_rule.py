"""The input-bound rule: TF Profiler's bands, and the cause it names (CPU, workers, I/O, elsewhere)."""

from __future__ import annotations

import pytest

from cpuwise.diagnose import diagnose
from cpuwise.diagnose.evidence import band
from cpuwise.diagnose.metrics import measure
from cpuwise.diagnose.rules.input_bound import workers_needed
from cpuwise.testing.recordings import fake_recording


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


def test_a_cpu_saturated_cpuwise_data_pipeline_gets_the_capacity_plan_as_evidence() -> None:
    f = diagnose(fake_recording("pipeline"))[0]
    assert f.id == "input_bound_cpu_saturated"
    (line,) = [e for e in f.evidence if e.startswith("cpuwise plan:")]
    assert "node(s)" in line and "`cpuwise plan report.json`" in line
    stock = diagnose(fake_recording())[0]  # a DataLoader job: no per-stage costs to plan from
    assert stock.id == "input_bound_cpu_saturated"
    assert not any(e.startswith("cpuwise plan:") for e in stock.evidence)
