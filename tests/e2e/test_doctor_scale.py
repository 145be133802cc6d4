"""Issue 14 item 10: the doctor does not grow with the number of steps. A job that steps as fast as it
can for 60 s keeps the doctor under 300 MB RSS, and every report (terminal, HTML, JSON, TensorBoard) is
written within 30 s of the job's end; the recorded step total is exact."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cpuwise.testing.scale import measure_scale

SECONDS = float(os.environ.get("CPUWISE_SCALE_SECONDS", "60"))  # the 60 s; shorter to try it out
RSS_LIMIT = 300 * 2**20
REPORT_LIMIT_S = 30.0


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 300)
def test_a_job_that_steps_as_fast_as_it_can_keeps_the_doctor_small_and_quick(tmp_path: Path) -> None:
    r = measure_scale(SECONDS, tmp_path, rss_limit_bytes=RSS_LIMIT, report_limit_s=REPORT_LIMIT_S)
    assert r.killed is None, r
    assert r.exit_code == 0, r
    assert r.steps_job > 1000 * SECONDS, r  # it really stepped fast (thousands of steps a second)
    assert r.steps_recorded == r.steps_job, r  # exact totals, however many steps
    assert r.doctor_peak_rss_bytes < RSS_LIMIT, r
    assert r.doctor_self_peak_rss_bytes is not None and r.doctor_self_peak_rss_bytes < RSS_LIMIT, r
    assert r.reports == {"terminal": True, "html": True, "json": True, "tensorboard": True}, r
    assert r.report_s is not None and r.report_s < REPORT_LIMIT_S, r
