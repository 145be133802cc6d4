"""diagnose() on synthetic jobs (cpuwise.testing.recordings): the verdict, and complete findings."""

from __future__ import annotations

import pytest

from cpuwise._schema import END_CRASHED, END_NOT_FOUND, Recording
from cpuwise.diagnose import diagnose, verdict
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.registry import finding_ids
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


def test_not_found_is_insufficient_data() -> None:
    rec = fake_recording("input_bound")
    rec.end_reason, rec.exit_code, rec.steps, rec.system, rec.processes = END_NOT_FOUND, 127, [], [], []
    f = diagnose(rec)
    assert [x.id for x in f] == ["insufficient_data"] and "could not be started" in f[0].summary


def test_crash_before_any_sample_is_still_one_finding() -> None:
    rec = fake_recording("crashed")
    rec.end_reason, rec.steps, rec.system, rec.processes = END_CRASHED, [], [], []
    assert verdict(diagnose(rec)) == "crashed"


def test_thresholds_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from cpuwise.diagnose import thresholds

    rec = fake_recording("input_bound")
    assert diagnose(rec)[0].severity == "high"
    monkeypatch.setattr(thresholds, "INPUT_BOUND_HIGH", 0.9)
    assert diagnose(rec)[0].severity == "moderate"
