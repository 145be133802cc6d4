"""measure(): the numbers every rule and renderer reads, taken once from a recording."""

from __future__ import annotations

from cpuwise.diagnose import diagnose, verdict
from cpuwise.diagnose.metrics import measure, step_stats
from cpuwise.testing.recordings import fake_recording


def test_warmup_steps_are_skipped() -> None:
    # The synthetic job's first 2 steps wait 0.8 s each for worker start-up; counted, they would make a
    # compute-bound job look input-bound.
    rec = fake_recording("compute")
    assert step_stats(rec.steps, warmup=0).wait_share > 0.05  # type: ignore[union-attr]
    assert measure(rec).steps.skipped == 2  # type: ignore[union-attr]
    assert verdict(diagnose(rec)) == "healthy"
    # Too few steps to spare any: all are used.
    assert step_stats(rec.steps[:5]).skipped == 0  # type: ignore[union-attr]
