"""diagnose() and the renderers never crash, whatever a recording holds (empty, partial, malformed
job reports), and always return at least one finding."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from cpuwise._schema import GpuStatus, PipelineStats, Recording
from cpuwise.diagnose import diagnose, verdict
from cpuwise.diagnose.registry import finding_ids
from cpuwise.report.html import render_html
from cpuwise.report.terminal import render_summary
from cpuwise.testing.recordings import PRESETS, fake_recording

FINDING_IDS = finding_ids()
JUNK = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=5), st.lists(st.integers(), max_size=2))


def _render(rec: Recording) -> None:
    findings = diagnose(rec)
    assert findings and verdict(findings) in FINDING_IDS
    Console(file=io.StringIO(), width=100).print(render_summary(rec, findings))
    assert render_html(rec, findings).endswith("</html>")


def test_empty_recording() -> None:
    rec = Recording(["x"], "2026-01-01T00:00:00", 0.0, 0.1, "exited", 0, {}, GpuStatus(False, "none"))
    assert verdict(diagnose(rec)) == "insufficient_data"
    _render(rec)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    preset=st.sampled_from(sorted(PRESETS)),
    cores=st.integers(1, 8),
    workers=st.integers(0, 4),
    steps=st.integers(0, 12),
    wait=st.floats(0.0, 0.2),
    junk=JUNK,
)
def test_any_recording_renders(
    preset: str, cores: int, workers: int, steps: int, wait: float, junk: object
) -> None:
    rec = fake_recording(preset, cores=cores, workers=workers, steps=steps, wait_s=wait, interval_s=0.2)
    rec.job_info["thread_pools"] = {"1": {"role": "worker", "torch_intra": junk, "native": junk}, "2": junk}
    rec.job_info["dataloaders"] = [junk, {"num_workers": junk, "batch_size": junk, "pid": junk,
                                          "persistent_workers": junk, "pin_memory": junk}]
    rec.job_info["ranks"] = {"1000": {"rank": junk, "local_rank": junk}, "x": junk, "1001": {"rank": 1}}
    rec.job_info["exceptions"] = junk if not isinstance(junk, str) else {"1000": junk}
    rec.job_info["exited"] = junk
    rec.job_info["framework"] = {"name": "lightning", "loader_from": junk, "owner": junk} if junk else junk
    # A malformed report from the job, read the way Recording.from_dict reads it.
    rec.pipeline_stats = [
        PipelineStats.from_dict({"pipeline": junk, "config": junk, "stages": [junk, {"per_item_ms": junk}]})
    ]
    _render(rec)
