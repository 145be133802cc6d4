"""The overall verdicts when no other rule explains the run: healthy, or not enough data to judge."""

from __future__ import annotations

from cpuwise._schema import END_NOT_FOUND, Recording
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import cpu_line, pct, step_line
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import ends_job, rule


def enough_data(m: Metrics) -> bool:
    """MIN_STEPS measured steps, or (without steps) MIN_SYSTEM_SAMPLES system samples."""
    if m.steps is not None:
        return m.steps.n >= th.MIN_STEPS
    return m.n_system >= th.MIN_SYSTEM_SAMPLES


@rule(ids=("healthy",), rank=80, overall=True)
def healthy(rec: Recording, m: Metrics, findings: list[Finding]) -> list[Finding]:
    """Compute-bound (or no bottleneck found): enough data, the job ended normally, nothing above info."""
    if not enough_data(m) or any(ends_job(f) for f in findings):
        return []
    if not all(f.severity == "info" for f in findings):
        return []
    evidence = [step_line(m), cpu_line(m)]
    if m.gpu_util is not None:
        evidence.append(f"GPU utilisation {m.gpu_util:.0f} %")
    if m.steps is not None:
        summary = (
            f"Compute-bound: the input pipeline keeps up (data-wait {pct(m.steps.wait_share)} of step time, "
            f"under TF Profiler's {pct(th.INPUT_BOUND_MODERATE)}), so the time goes into the model itself."
        )
        conf = 0.85
    else:
        summary = (
            "No bottleneck found in the CPU and GPU samples; the step split is unavailable, so whether the "
            "job waits for data could not be measured."
        )
        conf = 0.5
    return [
        Finding(
            id="healthy",
            title="Healthy: compute-bound" if m.steps is not None else "No bottleneck found",
            severity="info",
            confidence=conf,
            summary=summary,
            evidence=evidence,
            fix="Speed now comes from the model: mixed precision, torch.compile, a larger batch on the GPU, "
            "or `cpuwise optimize` for CPU inference.",
            fix_code="model = torch.compile(model)\n"
            "with torch.autocast(device_type='cuda', dtype=torch.bfloat16):\n"
            "    loss = loss_fn(model(x), y)",
        )
    ]


@rule(ids=("insufficient_data",), rank=90, overall=True)
def insufficient_data(rec: Recording, m: Metrics, findings: list[Finding]) -> list[Finding]:
    """Too few steps (or samples) to judge, unless the job hung or crashed (that is the verdict)."""
    if enough_data(m) or any(ends_job(f) for f in findings):
        return []
    if rec.end_reason == END_NOT_FOUND:
        summary = "The command could not be started, so there is nothing to diagnose."
    else:
        n = m.steps.n if m.steps else 0
        summary = (
            f"Too little data to judge: {n} step(s) and {m.n_system} system sample(s) in "
            f"{rec.duration_s:.1f} s (need {th.MIN_STEPS} steps, or {th.MIN_SYSTEM_SAMPLES} samples)."
        )
    return [
        Finding(
            id="insufficient_data",
            title="Not enough data",
            severity="info",
            confidence=0.9,
            summary=summary,
            evidence=[
                f"{sum(lane.n for lane in m.lanes)} step(s) recorded",
                f"{m.n_system} system sample(s) at {rec.interval_s} s interval",
            ],
            fix="Let the job run for at least a few dozen steps (e.g. one short epoch), or lower --interval.",
            fix_code="cpuwise doctor --interval 0.05 -- python train.py --epochs 1",
        )
    ]
