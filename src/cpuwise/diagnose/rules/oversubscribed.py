"""Thread oversubscription: more compute threads (torch, OpenMP, BLAS pools) than usable cores."""

from __future__ import annotations

from typing import Any

from cpuwise._schema import Recording
from cpuwise.diagnose import fixes
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import cpu_line
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import rule


def _pool_size(info: dict[str, Any]) -> int:
    """The largest pool one process reported (torch intra-op or a native OpenMP/BLAS pool)."""
    native = info.get("native")
    sizes = [info.get("torch_intra")] + [
        n.get("threads") for n in (native if isinstance(native, list) else []) if isinstance(n, dict)
    ]
    return max([int(s) for s in sizes if isinstance(s, int | float) and not isinstance(s, bool)], default=1)


def pool_oversubscription(rec: Recording, m: Metrics) -> tuple[str | None, list[str]]:
    """("strong" | "mild" | None, evidence) from job_info.thread_pools.

    strong: one pool larger than the usable cores, or the workers' pools together above
    POOL_WORKERS_RATIO x cores; mild: several multi-threaded processes whose pools exceed the cores."""
    pools = rec.job_info.get("thread_pools") or {}
    if not isinstance(pools, dict) or not pools:
        return None, []
    main = [_pool_size(v) for v in pools.values() if isinstance(v, dict) and v.get("role") != "worker"]
    work = [_pool_size(v) for v in pools.values() if isinstance(v, dict) and v.get("role") == "worker"]
    main_pool = max(main, default=1)
    worker_pool = max(work, default=1)
    # Workers alive at once, not every worker pid that reported a pool (a DataLoader re-created each
    # epoch forks fresh workers every time).
    n_workers = (m.workers_seen or m.workers_configured or len(work)) if work else 0
    cores = m.usable_cores
    total = (main_pool if main_pool > 1 else 0) + (n_workers * worker_pool if worker_pool > 1 else 0)
    multi = (main_pool > 1) + (n_workers if worker_pool > 1 else 0)
    ev = [
        f"thread pools: main {main_pool} thread(s), {n_workers} worker(s) x {worker_pool} thread(s) = "
        f"{main_pool + n_workers * worker_pool} threads that may compute at once on {cores} usable cores"
    ]
    if max(main_pool, worker_pool) > cores or n_workers * worker_pool > th.POOL_WORKERS_RATIO * cores:
        return "strong", ev
    if multi >= 2 and total > cores:
        return "mild", ev
    return None, ev


def _quota_line(rec: Recording, m: Metrics) -> list[str]:
    """The container's CPU quota when it is smaller than the cores the job can see (libraries size their
    thread pools from the visible cores, the scheduler gives the quota)."""
    quota = rec.host.get("quota") if isinstance(rec.host, dict) else None
    cores = quota.get("cores") if isinstance(quota, dict) else None
    visible = rec.host.get("logical_cores") if isinstance(rec.host, dict) else None
    if isinstance(cores, int | float) and isinstance(visible, int) and cores < visible:
        src = quota.get("source", "cgroup") if isinstance(quota, dict) else "cgroup"
        return [f"CPU quota {cores:g} cores ({src}) of {visible} visible: torch, OpenMP and BLAS size their "
                f"thread pools from the {visible}, the scheduler gives the job {cores:g}"]
    return []


@rule(ids=("oversubscribed",), rank=20)
def oversubscribed(rec: Recording, m: Metrics) -> list[Finding]:
    """More compute threads than usable cores: from the reported pools, confirmed by preemption."""
    cores = m.usable_cores
    pools, ev = pool_oversubscription(rec, m)
    runtime = []
    if m.involuntary_cs_per_core_s >= th.INVOLUNTARY_CS_PER_CORE_S:
        runtime.append(f"{m.involuntary_cs_per_core_s:.0f} involuntary context switches/s per core")
    if m.runqueue_mean is not None and m.runqueue_mean >= th.RUNQUEUE_RATIO * cores:
        runtime.append(f"run queue {m.runqueue_mean:.1f} runnable threads on {cores} cores")
    # The job keeps the cores busy: by its own mean CPU, or (a short job, whose start-up and end dilute
    # that mean) the machine is saturated while the job's processes are runnable most of the time.
    saturating = m.job_cpu_cores >= th.OVERSUB_JOB_CPU * cores or (
        m.cpu_busy_fraction >= th.CPU_SATURATED and m.job_runnable_share >= th.CONTENTION_RUNNABLE)
    contended = saturating and m.involuntary_cs_per_core_s >= th.INVOLUNTARY_CS_PER_CORE_S
    fix = (
        "Give each DataLoader worker one thread (torch.set_num_threads(1) and threadpool_limits(1) in "
        f"worker_init_fn, or OMP_NUM_THREADS=1) and the main process at most {cores} threads."
    )
    code = fixes.thread_caps(cores)
    evidence = ev + runtime + [cpu_line(m)] + _quota_line(rec, m)
    if pools == "strong" and contended:
        return [
            Finding(
                id="oversubscribed",
                title="Thread oversubscription",
                severity="high",
                confidence=0.9,
                summary=f"More threads compete for the {cores} usable cores than there are cores, and the "
                "scheduler is preempting them all the time; each thread runs slower than it would alone.",
                evidence=evidence,
                fix=fix,
                fix_code=code,
            )
        ]
    if pools is not None:
        strong = pools == "strong"
        return [
            Finding(
                id="oversubscribed",
                title="Thread pools larger than the machine",
                severity="moderate" if strong else "info",
                confidence=0.6 if strong else 0.4,
                summary=f"The thread pools add up to more threads than the {cores} usable cores; "
                + ("contention was not confirmed in this run, but " if not contended else "")
                + "any BLAS/OpenMP work in several processes at once will oversubscribe.",
                evidence=evidence,
                fix=fix,
                fix_code=code,
            )
        ]
    if len(runtime) == 2 and saturating and not rec.job_info.get("thread_pools"):
        return [
            Finding(
                id="oversubscribed",
                title="Likely thread oversubscription",
                severity="moderate",
                confidence=0.6,
                summary=f"The job keeps all {cores} usable cores busy with more runnable threads than cores "
                "and a high rate of preemption (no thread-pool report from the job to confirm the pools).",
                evidence=evidence,
                fix=fix,
                fix_code=code,
            )
        ]
    return []
