"""Realistic synthetic doctor recordings: the rules' contract cases, report demos, trying rules offline.

`fake_recording("input_bound")` is a 2-core machine training with 2 DataLoader workers that saturate
both cores while the main process waits ~60 % of every step. Other presets: "compute", "too_few_workers",
"io_bound", "oversubscribed", "gpu_underused", "sync_stalls", "memory_growth", "swap", "hung",
"crashed", "no_steps", "pipeline". Any FakeJob field can be overridden: `fake_recording("compute",
cores=4)`.

    python -m cpuwise.testing.recordings input_bound /tmp/fake-report   # writes report.html & co there
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cpuwise._schema import (
    END_CRASHED,
    END_EXITED,
    END_HUNG,
    Decision,
    GpuSample,
    GpuStatus,
    PipelineConfig,
    PipelineStats,
    ProcessSample,
    Recording,
    StageEntry,
    StepRecord,
    SystemSample,
)
from cpuwise.diagnose import diagnose
from cpuwise.diagnose.metrics import measure
from cpuwise.report import write_reports

GIB = 2**30
MIB = 2**20


@dataclass
class FakeJob:
    """What the synthetic job does; every rate is a mean with a little noise added."""

    cores: int = 2
    workers: int = 2
    steps: int = 60
    interval_s: float = 0.1
    wait_s: float = 0.060  # per step, after warm-up
    compute_s: float = 0.040
    sync_s: float = 0.0
    main_cpu: float = 0.35  # cores, while training
    worker_cpu: float = 0.95  # cores per worker
    other_cpu: float = 0.05  # cores used by other processes on the machine (the doctor, neighbours)
    iowait: float = 0.5  # percent
    disk_sleep: float = 0.0  # share of worker samples in state D
    read_rate: float = 4e6  # bytes/s by all workers together
    inv_cs_per_core_s: float = 20.0
    runqueue: float = 2.0
    main_threads: int = 2  # torch intra-op in the main process
    worker_threads: int = 1  # largest pool in each worker (torch or BLAS)
    worker_uss_growth: float = 0.0  # bytes/s per worker
    swap_growth: float = 0.0  # bytes over the run
    gpu: bool = False
    gpu_util: float = 35.0
    gpu_mem_frac: float = 0.3
    end_reason: str = END_EXITED
    exit_code: int | None = 0
    hang_after_s: float | None = None  # steps stop after this many seconds (hung preset)
    stacks: dict[str, str] = field(default_factory=dict)
    exception: str | None = None
    pipeline: bool = False
    seed: int = 0
    # Distributed: `ranks` training processes (each with `workers` workers) under a launcher process;
    # `slow_rank` waits `wait_s` for data while the others wait for it in the gradient all-reduce.
    ranks: int = 0
    slow_rank: int | None = None
    # Epochs of `epoch_steps` steps whose first step waits `startup_s` more (fresh workers every epoch).
    epoch_steps: int | None = None
    startup_s: float = 0.0
    persistent_workers: bool = False
    framework: dict[str, Any] | None = None  # what a framework callback reports (job_info["framework"])
    quota_cores: float | None = None  # a cgroup CPU quota below the `logical_cores` the machine shows
    logical_cores: int | None = None


PRESETS: dict[str, dict[str, Any]] = {
    "input_bound": {},
    "compute": {"wait_s": 0.001, "compute_s": 0.100, "main_cpu": 1.9, "worker_cpu": 0.05},
    "too_few_workers": {"cores": 4, "workers": 1, "main_cpu": 0.3, "worker_cpu": 0.97},
    "io_bound": {"worker_cpu": 0.12, "main_cpu": 0.15, "iowait": 35.0, "disk_sleep": 0.6, "read_rate": 80e6},
    "oversubscribed": {"worker_threads": 8, "inv_cs_per_core_s": 900.0, "runqueue": 17.0, "worker_cpu": 0.98},
    "gpu_underused": {
        "gpu": True,
        "wait_s": 0.002,
        "compute_s": 0.05,
        "main_cpu": 1.0,
        "worker_cpu": 0.3,
        "gpu_util": 22.0,
        "gpu_mem_frac": 0.2,
    },
    "sync_stalls": {
        "gpu": True,
        "wait_s": 0.001,
        "compute_s": 0.03,
        "sync_s": 0.03,
        "main_cpu": 1.0,
        "worker_cpu": 0.3,
        "gpu_util": 70.0,
    },
    "memory_growth": {
        "wait_s": 0.001,
        "compute_s": 0.3,
        "main_cpu": 1.0,
        "worker_cpu": 0.2,
        "worker_uss_growth": 6 * MIB,
    },
    "swap": {"wait_s": 0.001, "compute_s": 0.1, "main_cpu": 1.5, "worker_cpu": 0.2, "swap_growth": 900 * MIB},
    "hung": {"end_reason": END_HUNG, "exit_code": -9, "hang_after_s": 3.0},
    "crashed": {
        "end_reason": END_CRASHED,
        "exit_code": 1,
        "steps": 20,
        "exception": (
            'Traceback (most recent call last):\n  File "train.py", line 41, in <module>\n'
            "    loss = model(x)\nRuntimeError: mat1 and mat2 shapes cannot be multiplied (64x512 and 256x10)"
        ),
    },
    "no_steps": {"steps": 0, "wait_s": 0.0, "main_cpu": 1.8, "worker_cpu": 0.0, "workers": 0},
    "pipeline": {"pipeline": True},
    # A one-core CPU hog beside a 2-core job that keeps the machine busy: the job gets what is left.
    "contention": {"other_cpu": 1.0, "wait_s": 0.002, "compute_s": 0.1, "main_cpu": 1.0, "worker_cpu": 0.5},
    # 8-step epochs, each starting 2 fresh workers that take 0.6 s before the first batch.
    "worker_startup": {"epoch_steps": 8, "startup_s": 0.6, "wait_s": 0.004, "compute_s": 0.05,
                       "main_cpu": 0.9, "worker_cpu": 0.4},
    # 2 DDP ranks with one worker each; rank 1's samples cost 4x to prepare, so rank 0 waits for it.
    "straggler": {"ranks": 2, "slow_rank": 1, "workers": 1, "wait_s": 0.08, "compute_s": 0.04,
                  "main_cpu": 0.6, "worker_cpu": 0.9},
    # 2 DDP ranks, both input-bound alike.
    "ddp": {"ranks": 2, "workers": 1, "wait_s": 0.06, "compute_s": 0.04, "main_cpu": 0.4, "worker_cpu": 0.55},
    # A 2-core container quota on a 16-core host: torch sizes its pool from the 16.
    "quota": {"quota_cores": 2.0, "logical_cores": 16, "main_threads": 16, "wait_s": 0.001, "compute_s": 0.1,
              "main_cpu": 1.95, "worker_cpu": 0.05, "inv_cs_per_core_s": 600.0, "runqueue": 9.0},
}

OMP_STACK = (
    'Thread 0x7f3a (idle): "MainThread"\n'
    "    gomp_team_barrier_wait_end (libgomp.so.1)\n"
    "    GOMP_parallel (libgomp.so.1)\n"
    "    at::internal::invoke_parallel (libtorch_cpu.so)\n"
    "    __getitem__ (train.py:27)\n"
    "    fetch (torch/utils/data/_utils/fetch.py:52)\n"
)


def fake_recording(name: str = "input_bound", **overrides: Any) -> Recording:
    """A synthetic Recording from PRESETS[name], with FakeJob fields overridden by keyword."""
    if name not in PRESETS:
        raise ValueError(f"expected a preset in {sorted(PRESETS)}, got {name!r}")
    return build(replace(FakeJob(), **{**PRESETS[name], **overrides}))


def _steps(job: FakeJob, rng: random.Random, start: float, pid: int = 1000, wait_s: float | None = None,
           compute_s: float | None = None) -> list[StepRecord]:
    out, t = [], start
    wait_s = job.wait_s if wait_s is None else wait_s
    compute_s = job.compute_s if compute_s is None else compute_s
    for i in range(job.steps):
        warm = i < 2
        first = job.epoch_steps is not None and i % job.epoch_steps == 0
        wait = (0.8 if warm else wait_s) * rng.uniform(0.8, 1.2) + (job.startup_s if first and i else 0.0)
        comp = compute_s * rng.uniform(0.9, 1.1)
        sync = job.sync_s * rng.uniform(0.8, 1.2)
        if job.hang_after_s is not None and t + wait + comp + sync > job.hang_after_s:
            break
        out.append(StepRecord(i, round(t, 4), wait, comp, sync, pid=pid, epoch_start=first or i == 0))
        t += wait + comp + sync
    return out


def _rank_steps(job: FakeJob, rng: random.Random, start: float) -> list[StepRecord]:
    """Every rank's steps, in lock-step (each ends in a collective): the slowest rank (`slow_rank`, else
    every rank alike) waits `wait_s` for data; the others spend that time in the all-reduce inside
    backward (measured as compute)."""
    lead = _steps(job, rng, start, pid=1100 + (job.slow_rank or 0))
    out: list[StepRecord] = []
    for r in range(job.ranks):
        if job.slow_rank is None or r == job.slow_rank:
            out += [replace(s, pid=1100 + r) for s in lead]
            continue
        for s in lead:
            wait = min(s.data_wait_s, 0.002 * rng.uniform(0.8, 1.2))
            out.append(replace(s, pid=1100 + r, data_wait_s=wait, compute_s=s.total_s - s.sync_s - wait))
    return out


def build(job: FakeJob) -> Recording:
    """The Recording a doctor run of `job` would produce."""
    rng = random.Random(job.seed)
    start = 1.0  # interpreter start, imports, worker start-up
    steps = _rank_steps(job, rng, start) if job.ranks else _steps(job, rng, start)
    train_end = max((s.t_start + s.total_s for s in steps), default=start + 6.0)
    duration = train_end + (8.0 if job.end_reason == END_HUNG else 0.3)
    n = int(duration / job.interval_s)
    procs: list[ProcessSample] = []
    system: list[SystemSample] = []
    gpus: list[GpuSample] = []
    cum: dict[int, list[float]] = {}
    trainers = [1100 + r for r in range(job.ranks)] or [1000]
    workers_of = {tr: [tr + 100 + 10 * i + w for w in range(job.workers)] if job.ranks else
                  [1001 + w for w in range(job.workers)] for i, tr in enumerate(trainers)}
    parent = {w: tr for tr, ws in workers_of.items() for w in ws}
    parent.update({tr: 1000 for tr in trainers if tr != 1000})
    pids = [1000] + [tr for tr in trainers if tr != 1000] + [w for ws in workers_of.values() for w in ws]
    role = {p: "worker" if p in parent and parent[p] != 1000 or (not job.ranks and p != 1000) else
            ("rank" if p in trainers and job.ranks else "main") for p in pids}
    for k in range(1, n + 1):
        t = round(k * job.interval_s, 3)
        active = start <= t <= (job.hang_after_s or train_end)
        busy = 0.0
        alive = [p for p in pids if p == 1000 or t >= start]
        cpu_of = {"worker": job.worker_cpu, "rank": job.main_cpu,
                  "main": job.main_cpu if not job.ranks else 0.02}
        want = {
            p: (cpu_of[role[p]] if active else (0.3 if t < start else 0.0))
            * rng.uniform(0.85, 1.1)
            * bool(cum.get(p))
            for p in alive
        }
        # The machine has job.cores cores: what the processes want is scaled down to what is left.
        scale = min(1.0, max(0.0, job.cores - job.other_cpu) / max(1e-9, sum(want.values())))
        for pid in alive:
            worker = role[pid] == "worker"
            cpu = want[pid] * scale
            busy += cpu
            c = cum.setdefault(pid, [0.0, 0.0, 0.0])
            c[0] += 150 * job.interval_s
            c[1] += job.inv_cs_per_core_s * job.cores / len(pids) * job.interval_s * (1 if active else 0.05)
            c[2] += (job.read_rate / max(1, len(parent)) if worker else 0.0) * job.interval_s * active
            base = 300 * MIB if worker else 900 * MIB
            uss = (70 * MIB if worker else 600 * MIB) + (job.worker_uss_growth * (t - start) if worker else 0)
            state = (
                "disk-sleep"
                if worker and rng.random() < job.disk_sleep
                else ("running" if cpu > 0.5 else "sleeping")
            )
            procs.append(
                ProcessSample(
                    t=t,
                    pid=pid,
                    ppid=parent.get(pid, 999),
                    name="python",
                    role=role[pid],
                    cpu_percent=round(100 * cpu, 1),
                    num_threads=(job.worker_threads + 3) if worker else (job.main_threads + 6),
                    ctx_voluntary=int(c[0]),
                    ctx_involuntary=int(c[1]),
                    rss_bytes=int(base + uss),
                    uss_bytes=int(uss),
                    read_bytes=int(c[2]),
                    status=state,
                    cpu_core=pid % job.cores,
                )
            )
        total = min(float(job.cores), busy + job.other_cpu)
        per_core = [
            round(min(100.0, 100 * total / job.cores * rng.uniform(0.93, 1.07)), 1) for _ in range(job.cores)
        ]
        system.append(
            SystemSample(
                t=t,
                cpu_percent_per_core=per_core,
                iowait_percent=round(job.iowait * rng.uniform(0.7, 1.3), 1) if active else 0.2,
                load1=round(job.runqueue * (1 if active else 0.3), 2),
                procs_running=max(1, round(job.runqueue * rng.uniform(0.7, 1.3))),
                mem_used_bytes=int((3 + 0.3 * len(pids)) * GIB),
                mem_total_bytes=8 * GIB,
                swap_used_bytes=int(job.swap_growth * min(1.0, t / duration)),
            )
        )
        if job.gpu:
            util = job.gpu_util * rng.uniform(0.7, 1.3) if active else 0.0
            gpus.append(
                GpuSample(
                    t=t,
                    index=0,
                    util_percent=round(min(100.0, util), 1),
                    mem_used_bytes=int(job.gpu_mem_frac * 80 * GIB),
                    mem_total_bytes=80 * GIB,
                    power_w=round(120 + 4 * util, 1),
                    sm_clock_mhz=1980.0,
                    sm_activity_percent=round(0.8 * util, 1),
                    process_mem_bytes={"1000": int(job.gpu_mem_frac * 79 * GIB)},
                )
            )
    pools: dict[str, Any] = {
        str(tr): {
            "role": "main",
            "torch_intra": job.main_threads,
            "torch_interop": job.main_threads,
            "native": [{"library": "libgomp", "api": "openmp", "threads": job.main_threads}],
        }
        for tr in trainers
    }
    for pid in (p for p in pids if role[p] == "worker"):
        pools[str(pid)] = {
            "role": "worker",
            "torch_intra": 1,
            "torch_interop": 1,
            "native": [{"library": "libopenblas", "api": "blas", "threads": job.worker_threads}],
        }
    stats = [_pipeline_stats(job)] if job.pipeline else []
    return Recording(
        command=["python", "train.py", "--epochs", "1"],
        started_at="2026-11-22T23:00:00+00:00",
        duration_s=round(duration, 3),
        interval_s=job.interval_s,
        end_reason=job.end_reason,
        exit_code=job.exit_code,
        host={
            "logical_cores": job.logical_cores or job.cores,
            "affinity_cores": job.logical_cores or job.cores,
            "quota": {"cores": job.quota_cores, "source": "cgroup v2 cpu.max" if job.quota_cores else "none"},
            "usable_cores": job.cores,
            "memory_total_bytes": 8 * GIB,
            "memory_limit_bytes": None,
            "cpu_model": "AMD EPYC 7B13",
            "cpu_flags": {"avx2": True, "avx512f": False},
        },
        gpu=GpuStatus(True, "", ["NVIDIA H100 80GB HBM3"], "GPM SM_ACTIVITY")
        if job.gpu
        else GpuStatus(
            False, "nvidia-ml-py is installed but NVML found no driver (NVML_ERROR_LIBRARY_NOT_FOUND)"
        ),
        system=system,
        processes=procs,
        gpus=gpus,
        steps=steps,
        job_info={
            "instrumented": True,
            "step_source": "cpuwise.data" if job.pipeline else ("dataloader" if steps else None),
            "thread_pools": pools,
            "dataloaders": []
            if job.pipeline
            else [
                {
                    "num_workers": job.workers,
                    "batch_size": 64,
                    "pin_memory": job.gpu,
                    "persistent_workers": job.persistent_workers,
                    "prefetch_factor": 2,
                    "pid": tr,
                }
                for tr in trainers
            ],
            "python_exception": job.exception,
            "ranks": {str(tr): {"rank": r, "world_size": job.ranks, "local_rank": r, "backend": "gloo",
                                "launcher": "torch.multiprocessing.spawn"}
                      for r, tr in enumerate(trainers)} if job.ranks else {},
            **({"framework": job.framework} if job.framework else {}),
        },
        pipeline_stats=stats,
        stacks=job.stacks or ({str(p): OMP_STACK for p in pids} if job.end_reason == END_HUNG else {}),
        notes=["synthetic recording from cpuwise.testing.recordings"],
    )


def _pipeline_stats(job: FakeJob) -> PipelineStats:
    cfg = PipelineConfig(workers=job.workers, backend="process", prefetch=4, cpu_budget=float(job.cores),
                         ram_budget_bytes=2 * GIB)
    return PipelineStats(
        pipeline="train",
        epoch=0,
        items_out=64 * job.steps,
        consumer_wait_ratio=0.58,
        config=cfg,
        stages=[
            StageEntry(name="from_folder", kind="source", items=3840, time_s=0.4, per_item_ms=0.1),
            StageEntry(name="decode_crop", kind="map", items=3840, time_s=13.1, per_item_ms=3.4,
                       wait_ratio=0.02, workers=job.workers),
            StageEntry(name="batch", kind="batch", items=60, time_s=0.3, per_item_ms=5.0 / 64,
                       wait_ratio=0.9),
        ],
        decisions=[Decision(t=2.0, config=cfg, why="2 cores busy at 97 %: workers = cpu_budget")],
    )


def main(argv: list[str]) -> int:
    """`python -m cpuwise.testing.recordings [PRESET [OUT_DIR]]`: write the reports of a preset."""
    name = argv[0] if argv else "input_bound"
    out = Path(argv[1] if len(argv) > 1 else f"cpuwise-fake-{name}")
    rec = fake_recording(name)
    m = measure(rec)
    paths = write_reports(rec, diagnose(rec, m), out, m)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
