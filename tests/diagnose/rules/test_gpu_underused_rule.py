"""The GPU under-used rule: only when the input pipeline keeps up, with a fix sized to the memory."""

from __future__ import annotations

from cpuwise.diagnose import diagnose
from cpuwise.testing.recordings import fake_recording


def test_gpu_underused_is_explained_by_input_bound() -> None:
    # An idle GPU next to a highly input-bound loop is the input pipeline's fault: one finding only.
    findings = diagnose(fake_recording("input_bound", gpu=True, gpu_util=20.0))
    assert [f.id for f in findings] == ["input_bound_cpu_saturated"]
    assert "GPU" in findings[0].fix_code  # GPU decode offered when a GPU is there


def test_gpu_underused_suggests_bigger_batch_with_headroom() -> None:
    f = diagnose(fake_recording("gpu_underused"))[0]
    assert "batch_size=128" in f.fix_code and any("memory" in e for e in f.evidence)
