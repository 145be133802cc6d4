"""GPU under-used: low utilisation / SM activity that the input pipeline does not explain."""

from __future__ import annotations

from cpuwise._schema import Recording
from cpuwise.diagnose import fixes
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import NO_STEPS, band, gpu_activity, pct, step_line
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import rule


@rule(ids=("gpu_underused",), rank=70)
def gpu_underused(rec: Recording, m: Metrics) -> list[Finding]:
    """The GPU idles while the input pipeline keeps up: too little work per step (or per launch)."""
    if m.gpu_util is None:
        return []
    act = m.gpu_sm_activity if m.gpu_sm_activity is not None else m.gpu_util
    metric = rec.gpu.sm_metric or ("SM activity" if m.gpu_sm_activity is not None else "utilisation")
    if act >= th.GPU_UTIL_LOW:
        return []
    if m.steps is not None and m.steps.n >= th.MIN_STEPS:
        if band(m.steps.wait_share) == "high":
            return []  # the input-bound finding explains the idle GPU
        where = step_line(m)
    else:
        if m.cpu_busy_fraction >= th.CPU_SATURATED:
            return []  # the input-bound-without-steps finding covers it
        where = NO_STEPS
    evidence = [f"{gpu_activity(m)} on average ({metric})", where]
    bs = next(
        (d.get("batch_size") for d in rec.job_info.get("dataloaders", []) or [] if isinstance(d, dict)), None
    )
    headroom = m.gpu_mem_fraction is not None and m.gpu_mem_fraction < th.GPU_MEM_HEADROOM
    if m.gpu_mem_fraction is not None:
        evidence.append(f"GPU memory at most {pct(m.gpu_mem_fraction)} used")
    if bs:
        evidence.append(f"batch size {bs}")
    fix = (
        f"Use a larger batch ({bs * 2 if isinstance(bs, int) else 'twice today'}), since memory allows it, "
        "and fuse kernels with torch.compile."
        if headroom
        else "Give the GPU more work per launch: torch.compile, CUDA graphs, mixed precision."
    )
    return [
        Finding(
            id="gpu_underused",
            title="GPU under-used",
            severity="high" if act < 25 else "moderate",
            confidence=0.7 if where != NO_STEPS else 0.5,
            summary=f"The GPU is busy {act:.0f} % of the time while the input pipeline keeps up: each step "
            "gives it too little work"
            + (" and there is memory to spare for a larger batch." if headroom else "."),
            evidence=evidence,
            fix=fix,
            fix_code=fixes.bigger_batch(bs if isinstance(bs, int) else None),
        )
    ]
