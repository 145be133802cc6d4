"""The rich terminal summary, rendered into a string and read like a user would."""

from __future__ import annotations

import io

from rich.console import Console

from cpuwise.diagnose import diagnose
from cpuwise.report.terminal import render_summary
from cpuwise.testing.recordings import fake_recording


def _text(preset: str, **kw: object) -> str:
    rec = fake_recording(preset, **kw)
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(render_summary(rec, diagnose(rec)))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_summary_leads_with_ending_and_verdict() -> None:
    out = _text("input_bound")
    head = out[: out.index("1. [HIGH]")]
    assert "python train.py --epochs 1" in head
    assert "ran to completion (exit code 0) after" in head
    assert "Verdict: Input-bound: preprocessing saturates the CPU" in head


def test_summary_shows_evidence_fix_steps_processes_and_gpu_reason() -> None:
    out = _text("input_bound")
    assert "• data-wait 60 % of step time" in out
    assert "Fix: Make each sample cheaper" in out
    assert "img.draft(" in out  # the code snippet
    lines = out.splitlines()
    wait_row = next(ln for ln in lines if "data-wait" in ln and "│" in ln)
    assert "60 %" in wait_row and "█" in wait_row
    assert sum(" worker " in ln for ln in lines if "│" in ln) == 2
    assert sum(" main " in ln for ln in lines if "│" in ln) == 1
    assert "GPU metrics unavailable: nvidia-ml-py is installed but NVML found no driver" in out


def test_summary_with_gpu_pipeline_and_crash() -> None:
    assert "GPU NVIDIA H100 80GB HBM3: utilisation" in _text("gpu_underused")
    out = _text("pipeline")
    assert "cpuwise.data pipeline 'train'" in out and "decode_crop" in out and "ms/item" in out
    rec = fake_recording("pipeline")
    rec.pipeline_stats[0].decode = {"mode": "hybrid", "gpu_fraction": 0.6}
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(render_summary(rec, diagnose(rec)))
    assert "decode mode=hybrid, gpu_fraction=0.6" in console.file.getvalue()  # type: ignore[attr-defined]
    out = _text("crashed")
    assert "The job crashed (exit code 1)" in out and "Verdict: The job crashed" in out


def test_summary_without_steps_says_so() -> None:
    out = _text("no_steps")
    assert "Step split unavailable: no step records" in out
    assert "Verdict: No bottleneck found" in out  # not "compute-bound": unmeasured


def test_interrupted_job_says_so() -> None:
    out = _text("input_bound", end_reason="interrupted", exit_code=130)
    assert "The job was interrupted (exit code 130, signal SIGINT) after" in out
