"""Rules about how the job uses the machine: threads, the GPU, host-device syncs, memory."""

from __future__ import annotations

from typing import Any

from cpuwise._schema import Recording
from cpuwise.diagnose import fixes
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import NO_STEPS, band, cpu_line, gpu_activity, mib, pct, step_line
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics


def _pool_size(info: dict[str, Any]) -> int:
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


def rule_oversubscribed(rec: Recording, m: Metrics) -> list[Finding]:
    cores = m.usable_cores
    pools, ev = pool_oversubscription(rec, m)
    runtime = []
    if m.involuntary_cs_per_core_s >= th.INVOLUNTARY_CS_PER_CORE_S:
        runtime.append(f"{m.involuntary_cs_per_core_s:.0f} involuntary context switches/s per core")
    if m.runqueue_mean is not None and m.runqueue_mean >= th.RUNQUEUE_RATIO * cores:
        runtime.append(f"run queue {m.runqueue_mean:.1f} runnable threads on {cores} cores")
    saturating = m.job_cpu_cores >= th.OVERSUB_JOB_CPU * cores
    contended = saturating and m.involuntary_cs_per_core_s >= th.INVOLUNTARY_CS_PER_CORE_S
    fix = (
        "Give each DataLoader worker one thread (torch.set_num_threads(1) and threadpool_limits(1) in "
        f"worker_init_fn, or OMP_NUM_THREADS=1) and the main process at most {cores} threads."
    )
    code = fixes.thread_caps(cores)
    evidence = ev + runtime + [cpu_line(m)]
    if pools == "strong" and contended:
        return [
            Finding(
                "oversubscribed",
                "Thread oversubscription",
                "high",
                0.9,
                f"More threads compete for the {cores} usable cores than there are cores, and "
                f"the scheduler is "
                "preempting them all the time; each thread runs slower than it would alone.",
                evidence,
                fix,
                code,
            )
        ]
    if pools is not None:
        strong = pools == "strong"
        return [
            Finding(
                "oversubscribed",
                "Thread pools larger than the machine",
                "moderate" if strong else "info",
                0.6 if strong else 0.4,
                f"The thread pools add up to more threads than the {cores} usable cores; "
                + ("contention was not confirmed in this run, but " if not contended else "")
                + "any BLAS/OpenMP work in several processes at once will oversubscribe.",
                evidence,
                fix,
                code,
            )
        ]
    if len(runtime) == 2 and saturating and not rec.job_info.get("thread_pools"):
        return [
            Finding(
                "oversubscribed",
                "Likely thread oversubscription",
                "moderate",
                0.6,
                f"The job keeps all {cores} usable cores busy with more runnable threads than "
                f"cores and a high "
                "rate of preemption (no thread-pool report from the job to confirm the pools).",
                evidence,
                fix,
                code,
            )
        ]
    return []


def rule_gpu_underused(rec: Recording, m: Metrics) -> list[Finding]:
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
            "gpu_underused",
            "GPU under-used",
            "high" if act < 25 else "moderate",
            0.7 if where != NO_STEPS else 0.5,
            f"The GPU is busy {act:.0f} % of the time while the input pipeline keeps up: each "
            f"step gives it too "
            "little work" + (" and there is memory to spare for a larger batch." if headroom else "."),
            evidence,
            fix,
            fixes.bigger_batch(bs if isinstance(bs, int) else None),
        )
    ]


def rule_sync_stalls(rec: Recording, m: Metrics) -> list[Finding]:
    s = m.steps
    if s is None or s.n < th.MIN_STEPS or s.sync_share < th.SYNC_SHARE_HIGH:
        return []
    return [
        Finding(
            "sync_stalls",
            "Host-device sync stalls",
            "high" if s.sync_share >= 0.3 else "moderate",
            0.8,
            f"The host waits for the GPU {pct(s.sync_share)} of each step (.item(), .cpu(), synchronize), so "
            "it cannot queue the next step's work meanwhile.",
            [step_line(m), f"mean sync {1e3 * s.mean_sync_s:.1f} ms per step"],
            "Keep values on the device and read them back every N steps, not every step.",
            fixes.SYNC_STALLS,
        )
    ]


def _slope(series: list[tuple[float, int]]) -> float:
    """Least-squares slope in bytes per second."""
    n = len(series)
    mt = sum(t for t, _ in series) / n
    mv = sum(v for _, v in series) / n
    den = sum((t - mt) ** 2 for t, _ in series)
    return sum((t - mt) * (v - mv) for t, v in series) / den if den > 0 else 0.0


def rule_memory_growth(rec: Recording, m: Metrics) -> list[Finding]:
    growing = []
    for pid, series in m.mem_series.items():
        if len(series) < 3 or series[-1][0] - series[0][0] < th.MEM_GROWTH_MIN_DURATION_S:
            continue
        per_min = _slope(series) * 60.0
        first, last = series[0][1], series[-1][1]
        rel = (last - first) / first if first > 0 else 0.0
        if per_min >= th.MEM_GROWTH_BYTES_PER_MIN and rel >= th.MEM_GROWTH_RELATIVE:
            growing.append((pid, per_min, first, last))
    if not growing:
        return []
    evidence = [
        f"worker {pid}: {mib(first)} -> {mib(last)} (+{mib(per_min)}/min)"
        for pid, per_min, first, last in growing
    ]
    total = sum(g[1] for g in growing)
    return [
        Finding(
            "memory_growth",
            "Memory grows in the data workers",
            "high" if len(growing) >= 2 else "moderate",
            0.75,
            f"{len(growing)} worker process(es) grow by {mib(total)}/min together: the classic "
            f"copy-on-read of "
            "Python objects in the Dataset after fork, which ends in swap or the OOM killer.",
            evidence,
            "Hold the Dataset's index (paths, labels) in numpy arrays instead of Python lists/dicts.",
            fixes.COPY_ON_READ,
        )
    ]


def rule_swap(rec: Recording, m: Metrics) -> list[Finding]:
    if not rec.system:
        return []
    start = rec.system[0].swap_used_bytes
    peak = max(s.swap_used_bytes for s in rec.system)
    if peak - start < th.SWAP_GROWTH_BYTES:
        return []
    used = max(s.mem_used_bytes / s.mem_total_bytes for s in rec.system if s.mem_total_bytes)
    return [
        Finding(
            "swap",
            "The job is swapping",
            "high",
            0.85,
            f"Swap use grew by {mib(peak - start)} during the job: pages it needs go to disk, "
            f"and every touch of "
            "them costs milliseconds.",
            [
                f"swap {mib(start)} -> {mib(peak)}",
                f"RAM up to {pct(used)} used" + (" (near full)" if used >= th.MEM_USED_HIGH else ""),
            ],
            "Use less memory per worker and fewer batches in flight (num_workers, prefetch_factor), or a RAM "
            "budget in cpuwise.data.",
            fixes.SWAP,
        )
    ]
