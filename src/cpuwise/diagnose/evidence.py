"""Evidence lines shared by the rules: numbers from the recording, formatted the same way everywhere."""

from __future__ import annotations

import signal

from cpuwise._schema import PipelineStats, Recording, StageEntry
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.metrics import Metrics

NO_STEPS = "step split unavailable: no step records (not a Python job run with cpuwise instrumentation)"


def pct(x: float) -> str:
    """0.623 -> '62 %'."""
    return f"{100 * x:.0f} %"


def mib(b: float) -> str:
    """Bytes -> '12 MiB'."""
    return f"{b / 2**20:.0f} MiB"


def band(share: float) -> str | None:
    """TF Profiler's input-bound band of a data-wait share: None (fine), "moderate" or "high"."""
    if share >= th.INPUT_BOUND_HIGH:
        return "high"
    if share >= th.INPUT_BOUND_MODERATE:
        return "moderate"
    return None


def cpu_line(m: Metrics) -> str:
    """How busy the usable cores were, and which roles of the job used them."""
    roles = ", ".join(f"{r} {c:.2f}" for r, c in sorted(m.role_cpu_cores.items()))
    sys_part = f"; whole machine {m.system_busy_cores:.2f}" if m.system_busy_cores is not None else ""
    return (
        f"CPU busy {pct(m.cpu_busy_fraction)} of {m.usable_cores} usable cores "
        f"(job cores: {roles or 'no process samples'}{sys_part})"
    )


def step_line(m: Metrics) -> str:
    """The step split (data-wait / compute / sync) over the measured steps, or why there is none."""
    s = m.steps
    if s is None:
        return NO_STEPS
    return (
        f"data-wait {pct(s.wait_share)} of step time over {s.n} steps (first {s.skipped} skipped as "
        f"warm-up); compute {pct(s.compute_share)}, sync {pct(s.sync_share)}"
        + (f" (collectives {pct(s.share(s.mean_collective_s))})" if s.mean_collective_s > 0 else "")
        + "; "
        f"mean step {1e3 * s.mean_total_s:.1f} ms"
    )


WORK_STAGE_KINDS = ("map", "filter", "source")


def slowest_stage(stats: PipelineStats) -> StageEntry | None:
    """The working stage with the least throughput: per-item time divided by its workers.

    Only stages that do per-sample work count: a prefetch / batch / repeat stage's time is mostly
    waiting on the stages before it, so it would always look slowest.
    """
    stages = [s for s in stats.stages if s.per_item_ms and s.kind in WORK_STAGE_KINDS]
    if not stages:
        return None
    return max(stages, key=lambda s: s.per_item_ms / max(1, s.workers or 1))


def pipeline_evidence(rec: Recording) -> list[str]:
    """One line per cpuwise.data pipeline: its consumer's wait, slowest stage and config."""
    out = []
    for st in rec.pipeline_stats:
        cfg = st.config
        line = f"cpuwise.data '{st.pipeline}'"
        if st.consumer_wait_ratio is not None:
            line += f": consumer waited {pct(st.consumer_wait_ratio)}"
        slow = slowest_stage(st)
        if slow:
            line += (
                f"; slowest stage '{slow.name}' {slow.per_item_ms:.1f} ms/item on {slow.workers or 1} "
                "worker(s)"
            )
        line += (
            f"; config workers={cfg.workers} backend={cfg.backend} prefetch={cfg.prefetch} "
            f"cpu_budget={cfg.cpu_budget}"
        )
        out.append(line)
    return out


def gpu_activity(m: Metrics) -> str:
    """'GPU utilisation 4 %, SM activity 0 %' (whichever were measured)."""
    parts = []
    if m.gpu_util is not None:
        parts.append(f"utilisation {m.gpu_util:.0f} %")
    if m.gpu_sm_activity is not None:
        parts.append(f"SM activity {m.gpu_sm_activity:.0f} %")
    return "GPU " + ", ".join(parts) if parts else "no GPU samples"


def describe_exit(code: int | None) -> str:
    """'exit code 137, signal SIGKILL' (shell convention: 128 + N, or -N from Popen)."""
    if code is None:
        return "no exit code"
    if code < 0 or code > 128:
        num = -code if code < 0 else code - 128
        try:
            return f"exit code {code}, signal {signal.Signals(num).name}"
        except ValueError:
            return f"exit code {code}"
    return f"exit code {code}"
