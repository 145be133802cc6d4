"""CPU contention: another process on the machine takes the cores the job wants."""

from __future__ import annotations

from cpuwise._schema import Recording
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import cpu_line, pct, step_line
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import rule

FIX_CODE = (
    "# Give the job cores of its own (the other process is not part of this job):\n"
    "#   taskset -c 0-{last} python train.py          # and pin the other process to the other cores\n"
    "#   or run it in a container / cgroup with its own CPU set (docker run --cpuset-cpus=...)\n"
    "# then size the workers for the cores that are really free:\n"
    "loader = DataLoader(dataset, num_workers=free_cores - 1, persistent_workers=True)"
)


@rule(ids=("cpu_contention",), rank=15)
def cpu_contention(rec: Recording, m: Metrics) -> list[Finding]:
    """The machine is saturated and processes outside the job use a substantial share of it."""
    cores = m.usable_cores
    if m.system_busy_cores is None or m.n_system < th.MIN_SYSTEM_SAMPLES:
        return []
    # Full: the machine is saturated, or the job uses what the others leave it (sampled busy time reads a
    # little under 100 % even on a full machine, so the job's share is held to the same margin).
    left = cores - m.others_cores
    full = (m.system_busy_cores >= th.CPU_SATURATED * cores
            or (left > 0 and m.job_cpu_cores >= th.CPU_SATURATED * left))
    wants = m.job_cpu_cores >= th.CONTENTION_JOB_CPU or m.job_runnable_share >= th.CONTENTION_RUNNABLE
    if not full or m.others_cores < th.OTHERS_SHARE * cores or not wants:
        return []
    share = m.others_cores / cores
    evidence = [
        f"other processes used {m.others_cores:.2f} of the {cores} usable cores ({pct(share)}) while the "
        f"machine was {pct(min(1.0, m.system_busy_cores / cores))} busy",
        cpu_line(m),
    ]
    if m.steps is not None:
        evidence.append(step_line(m))
    evidence.append(f"the job's processes were runnable (on a CPU or queued for one) in "
                    f"{pct(m.job_runnable_share)} of their samples")
    if m.runqueue_mean is not None:
        evidence.append(f"run queue {m.runqueue_mean:.1f} runnable threads on {cores} cores")
    return [
        Finding(
            id="cpu_contention",
            title="CPU contention: another process takes the cores",
            severity="high",  # every other number of the run is measured under it
            confidence=0.8,
            summary=f"Processes outside the job used {m.others_cores:.1f} of the {cores} usable cores while "
            f"the job needed them: every part of the job (the training loop, its data workers) runs "
            f"slower than it would on its own. Fix the competition first; the other findings are measured "
            "under it.",
            evidence=evidence,
            fix="Run the job on cores of its own (stop or move the other process, or pin them apart with "
            "taskset / a cgroup CPU set), then re-run the doctor to see the job's own bottleneck.",
            fix_code=FIX_CODE.format(last=max(0, cores - 1)),
        )
    ]
