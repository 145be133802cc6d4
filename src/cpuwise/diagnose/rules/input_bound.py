"""Input-bound: the training loop waits for data (TF Profiler's bands), split by cause.

One rule, four findings, tried in this order (cause before symptom): the producers of the data are
idle while the loop waits, i.e. they wait on reads (`io_bound`: remote/network latency shows no
iowait, local disks do); steps so short that the loader's per-batch overhead is the wait
(`input_bound`); the CPU is saturated (`input_bound_cpu_saturated`); free cores but too few workers
(`too_few_workers`); else the wait is elsewhere (`input_bound`). The share is the steady-state
data-wait: the wait for fresh workers at each new epoch is the `worker_startup` finding's. Without
step records, an idle GPU next to a saturated CPU still points at the input pipeline. Fixes are
written in the idiom of the job's framework (`cpuwise.diagnose.idioms`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cpuwise._scaleout import plan_from_recording, plan_line
from cpuwise._schema import Recording
from cpuwise.diagnose import fixes
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import (
    NO_STEPS,
    band,
    cpu_line,
    gpu_activity,
    pct,
    pipeline_evidence,
    slowest_stage,
    step_line,
)
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.idioms import idiom_of, loader_code
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import rule


def data_wait(rec: Recording, m: Metrics) -> tuple[float, str] | None:
    """The steady data-wait share and where it came from: the steps (less the wait for fresh workers at
    each epoch, see worker_startup), else cpuwise.data's consumer wait."""
    if m.steps is not None and m.steps.n >= th.MIN_STEPS:
        return max(0.0, m.steps.wait_share - m.restart_wait_share), "steps"
    ratios = [s.consumer_wait_ratio for s in rec.pipeline_stats if s.consumer_wait_ratio is not None]
    if ratios:
        return max(ratios), "cpuwise.data consumer_wait_ratio"
    return None


def current_workers(rec: Recording, m: Metrics) -> int:
    """The data workers per training process today: the first cpuwise.data pipeline's, else the
    DataLoader's (per rank in a distributed job), else those seen."""
    if rec.pipeline_stats:
        return rec.pipeline_stats[0].config.workers
    if m.ranks:
        return max((r.workers_configured or 0) for r in m.ranks)
    return m.workers_configured if m.workers_configured is not None else m.workers_seen


def trainers(m: Metrics) -> int:
    """How many processes train (ranks share the cores)."""
    return max(1, len(m.ranks))


def workers_needed(workers: int, share: float, m: Metrics) -> int:
    """Workers to hide the data-wait: today's producers deliver a batch per step time T, the loop needs
    one per (T - wait), so scale by T / (T - wait); with no workers the main process loads, needing
    wait / compute workers. Capped at the usable cores per training process (the trainer mostly waits)."""
    busy = max(1e-9, 1.0 - share)
    need = math.ceil(share / busy) if workers == 0 else math.ceil(workers / busy - 1e-9)
    return max(1, min(max(1, m.usable_cores // trainers(m)), need))


@dataclass
class InputCase:
    """What every input-bound sub-case needs: the share, its band, and the shared evidence."""

    rec: Recording
    m: Metrics
    share: float
    severity: str
    confidence: float
    evidence: list[str]
    workers: int
    uses_cpuwise_data: bool
    slow_txt: str  # " Start with stage 'decode', the slowest." when cpuwise.data reported stages
    others: float  # cores used by other processes on the machine

    @property
    def head(self) -> str:
        return f"The training loop waits for data {pct(self.share)} of each step"

    @property
    def per_rank(self) -> str:
        return " per rank" if self.m.ranks else ""

    def finding(self, *, id: str, title: str, summary: str, fix: str, fix_code: str,
                extra: Sequence[str] = ()) -> Finding:
        """A finding of this case: its severity, confidence and shared evidence, plus `extra` lines."""
        return Finding(id=id, title=title, severity=self.severity, confidence=self.confidence,
                       summary=summary, evidence=self.evidence + list(extra), fix=fix, fix_code=fix_code)


def _workers_line(rec: Recording, m: Metrics, workers: int) -> str:
    per = f", {m.worker_cpu_each:.2f} cores each" if m.worker_cpu_each is not None else ""
    if m.ranks:
        seen = ", ".join(f"rank {r.rank}: {r.workers_seen}" for r in m.ranks)
        return (f"{workers} data worker(s) configured per rank; worker processes seen per rank: {seen}{per}")
    return f"{workers} data worker(s) configured, {m.workers_seen} worker process(es) seen{per}"


def input_case(rec: Recording, m: Metrics) -> InputCase | None:
    """The input-bound case of `rec`, or None when data-wait is under the moderate band / unknown."""
    dw = data_wait(rec, m)
    if dw is None or band(dw[0]) is None:
        return None
    share, source = dw
    workers = current_workers(rec, m)
    evidence = [step_line(m) if source == "steps" else f"data-wait {pct(share)} ({source}); {NO_STEPS}"]
    if source == "steps" and m.restart_wait_share >= 0.01:
        evidence.append(f"steady data-wait {pct(share)} once the fresh workers' start-up at each of "
                        f"{m.restarts} new epoch(s) ({pct(m.restart_wait_share)}) is set apart")
    evidence += [cpu_line(m), _workers_line(rec, m, workers)]
    evidence += pipeline_evidence(rec)
    if m.gpu_util is not None:
        evidence.append(f"{gpu_activity(m)}: the GPU waits for the same data")
    others = m.others_cores
    if m.cpu_busy_fraction >= th.CPU_SATURATED and others >= th.OTHERS_SHARE * m.usable_cores:
        evidence.append(
            f"other processes on the machine use {others:.2f} of the {m.usable_cores} cores: the job "
            "competes with them for CPU"
        )
    slow = next((s for s in map(slowest_stage, rec.pipeline_stats) if s is not None), None)
    return InputCase(
        rec=rec,
        m=m,
        share=share,
        severity=str(band(share)),
        confidence=0.9 if source == "steps" and m.steps and m.steps.n >= 20 else 0.75,
        evidence=evidence,
        workers=workers,
        uses_cpuwise_data=bool(rec.pipeline_stats) or rec.job_info.get("step_source") == "cpuwise.data",
        slow_txt=f" Start with stage '{slow.name}', the slowest." if slow else "",
        others=others,
    )


def trainer_cpu(m: Metrics) -> float:
    """Mean cores of one training process (the main process, or a rank)."""
    if m.ranks:
        return sum(r.cpu_cores for r in m.ranks) / len(m.ranks)
    return m.role_cpu_cores.get("main", 0.0)


def main_busy_while_waiting(c: InputCase) -> bool:
    """The training process stays on the CPU for at least half of its data-wait (a pin_memory thread or a
    collate_fn working in it): its cores beyond what its compute share explains."""
    return trainer_cpu(c.m) - (1.0 - c.share) >= 0.5 * c.share


def producers_idle(c: InputCase) -> str | None:
    """Why the data's producers are idle while the loop waits for them (they wait on reads), or None.

    With workers: each uses little CPU and sleeps most samples while the training process does not
    hold the batches up. Without: the training process itself loads, and during its data-wait it is
    mostly off the CPU. Steps under TINY_STEP_S, or a wait under IO_MIN_WAIT_S, are left to the other
    explanations."""
    m = c.m
    s = m.steps
    if s is not None and (s.mean_total_s < th.TINY_STEP_S or s.mean_wait_s < th.IO_MIN_WAIT_S):
        return None
    if c.workers > 0 and m.worker_cpu_each is not None:
        if (m.worker_cpu_each < th.IO_WORKER_CPU and m.worker_sleep_share >= th.IO_SLEEP_SHARE
                and not main_busy_while_waiting(c)):
            return (f"the data workers use {m.worker_cpu_each:.2f} cores each and are asleep "
                    f"{pct(m.worker_sleep_share)} of the samples")
        return None
    if c.workers == 0 and m.steps is not None:
        # Loading in the training process itself: waiting on reads it sleeps (S) through its data-wait;
        # loading on the CPU (or starved of it by other processes) it stays runnable (R).
        busy = trainer_cpu(m)
        if m.trainer_sleep_share >= th.IO_SLEEP_SHARE * c.share and busy < 1.0 - 0.5 * c.share:
            return (f"the training process loads the data itself, uses only {busy:.2f} cores and is asleep "
                    f"{pct(m.trainer_sleep_share)} of the samples while it waits {pct(c.share)} of each step")
    return None


def _io_bound(c: InputCase) -> Finding | None:
    m, signals = c.m, []
    if m.iowait_percent is not None and m.iowait_percent >= th.IOWAIT_HIGH:
        signals.append(f"iowait {m.iowait_percent:.0f} %")
    if m.disk_sleep_share >= th.DISK_SLEEP_SHARE:
        signals.append(f"{pct(m.disk_sleep_share)} of worker samples in disk sleep")
    if m.read_rate_bps >= th.READ_RATE_HIGH:
        signals.append(f"reading {m.read_rate_bps / 1e6:.0f} MB/s")
    idle = producers_idle(c)
    storage = bool(signals) and m.cpu_busy_fraction < th.IO_CPU_IDLE
    if not storage and idle is None:
        return None
    producers = max(1, c.workers)
    # Waiting workers cost no CPU: size them from the wait, not the cores (each delivers a batch per
    # step time today; the loop needs one per compute time), within the CPU they do use.
    need = max(producers + 1, math.ceil(producers / max(1e-9, 1.0 - c.share) - 1e-9))
    if m.worker_cpu_each:
        need = min(need, max(producers + 1, int(m.usable_cores / trainers(m) / max(1e-3, m.worker_cpu_each))))
    need = min(need, th.IO_MAX_WORKERS)
    why = idle or ", ".join(signals)
    latency = idle is not None and not signals
    return c.finding(
        id="io_bound",
        title="Input-bound: waiting on reads" if latency else "Input-bound: waiting on storage",
        summary=f"{c.head}, and {why}: the loader is waiting on reads, not on the CPU"
        + (" (remote or network reads show no iowait)" if latency else "")
        + f". Waiting workers cost no CPU: use many more of them than cores ({need}{c.per_rank}), or "
        "batched / asynchronous reads.",
        extra=[f"I/O: {why}", f"{need} workers would overlap the reads: today's {producers} producer(s) x "
               f"step / (step - wait), not capped at the {m.usable_cores} cores since they mostly wait"],
        fix=f"Raise {idiom_of(c.rec).workers_param} from {c.workers} to {need}{c.per_rank}: more than the "
        "cores is right for workers that wait; or read in threads / asynchronously, batch the reads, and "
        "cache what you read on local disk.",
        fix_code=loader_code(c.rec, workers=need, comment="they wait on reads: more than the cores")
        + "\n" + fixes.IO_BOUND,
    )


def _cpu_saturated(c: InputCase) -> Finding | None:
    m = c.m
    if m.cpu_busy_fraction < th.CPU_SATURATED:
        return None
    shared = (
        f" ({c.others:.1f} of them with other processes)"
        if c.others >= th.OTHERS_SHARE * m.usable_cores
        else ""
    )
    plan = plan_from_recording(c.rec)  # cpuwise.data jobs: the cores (and nodes) the pipeline needs
    return c.finding(
        id="input_bound_cpu_saturated",
        title="Input-bound: preprocessing saturates the CPU",
        extra=[plan_line(plan)] if plan is not None else [],
        summary=f"{c.head} while all {m.usable_cores} usable cores are busy{shared}: preprocessing needs "
        "more CPU than the job gets, so more workers will not help.",
        fix="Make each sample cheaper: decode JPEGs at reduced scale, output uint8 and normalise on the "
        "device, use cpuwise.data (fast decoder, autotuned workers) or decode on the GPU." + c.slow_txt,
        fix_code=fixes.cheaper_preprocessing(gpu=c.rec.gpu.available),
    )


def _too_few_workers(c: InputCase) -> Finding | None:
    m = c.m
    free = m.usable_cores * (1.0 - m.cpu_busy_fraction)
    where = "sit idle"
    if c.workers == 0 and m.others_cores >= th.OTHERS_SHARE * m.usable_cores:
        # The training process loads serially; the cores other processes hold would be the workers' once
        # the competition is gone (the contention finding says so first).
        free, where = max(free, m.usable_cores - m.job_cpu_cores), "are idle or held by other processes"
    need = workers_needed(c.workers, c.share, m)
    busy_workers = c.workers == 0 or (m.worker_cpu_each or 0.0) >= th.WORKER_BUSY
    if free < th.MIN_FREE_CORES or need <= c.workers or not busy_workers:
        return None
    idiom = idiom_of(c.rec)
    return c.finding(
        id="too_few_workers",
        title=f"Input-bound: too few workers ({c.workers}) for the free cores",
        summary=f"{c.head} while {free:.1f} of {m.usable_cores} cores {where}: raise the data workers from "
        f"{c.workers} to {need}{c.per_rank}.",
        extra=[
            f"{free:.1f} cores idle on average; {need} workers would hide the wait (today's "
            f"{max(c.workers, 1)} producer(s) x step / (step - wait), capped at the cores)"
        ],
        fix=f"Raise {idiom.workers_param} to {need}{c.per_rank} (the usable cores: {m.usable_cores}), in "
        f"the {idiom.label}.",
        fix_code=loader_code(c.rec, workers=need),
    )


def _tiny_steps(c: InputCase) -> Finding | None:
    """Steps under TINY_STEP_S fed by worker processes that are not busy preparing samples: the loader's
    fixed cost per batch (pickling through a queue) is the wait, whatever the CPU does (it is busy with
    that very overhead). Without workers there is no hand-off: the loading itself is the wait."""
    s = c.m.steps
    if s is None or s.mean_total_s >= th.TINY_STEP_S or c.workers == 0:
        return None
    if (c.m.worker_cpu_each or 0.0) >= th.WORKER_BUSY:
        return None  # busy workers: preparing the samples is the cost, however short the steps
    c.confidence *= 0.9
    return c.finding(
        id="input_bound",
        title="Input-bound: tiny steps",
        summary=f"{c.head}, and steps this short are dominated by the loader's per-batch overhead, not "
        "by preparing the samples.",
        extra=[
            f"steps take only {1e3 * s.mean_total_s:.1f} ms: a DataLoader's fixed cost per batch "
            "(pickling through a queue, collate, worker start-up each epoch) is of the same order"
        ],
        fix="Give each step more work (a larger batch), keep workers alive across epochs "
        "(persistent_workers=True), or index in-memory tensors directly without worker processes."
        + c.slow_txt,
        fix_code=fixes.TINY_STEPS,
    )




def _elsewhere(c: InputCase) -> Finding:
    c.confidence *= 0.9
    if c.workers > 0 and main_busy_while_waiting(c):
        pin = any(isinstance(d, dict) and d.get("pin_memory") for d in c.rec.job_info.get("dataloaders", []))
        where = "its pin_memory thread (pin_memory=True)" if pin else "a collate_fn or transform run there"
        return c.finding(
            id="input_bound",
            title="Input-bound: batches held up in the main process",
            summary=f"{c.head} while the workers idle ({c.m.worker_cpu_each or 0.0:.2f} cores each) and "
            f"the training process stays busy ({trainer_cpu(c.m):.2f} cores): the batches are held up in the "
            f"main process, likely by {where}.",
            extra=[f"the training process uses {trainer_cpu(c.m):.2f} cores, more than its compute share "
                   f"({pct(1.0 - c.share)} of the time) explains"],
            fix="Move the work out of the main process: pin in the workers or not at all (pin_memory=False "
            "and .to(device, non_blocking=True) of uint8 batches), collate in the workers (the DataLoader's "
            "collate_fn runs there when num_workers > 0), and profile the main process with py-spy.",
            fix_code=loader_code(c.rec, workers=max(c.workers, 1), comment="collate runs in these workers")
            .replace("persistent_workers=True", "persistent_workers=True, pin_memory=False"),
        )
    return c.finding(
        id="input_bound",
        title="Input-bound",
        summary=f"{c.head}; the CPU is not saturated and the workers are not busy, so the wait is elsewhere "
        "(locks, a slow collate_fn or pin_memory thread in the main process, a queue hand-off).",
        fix="Profile one worker's __getitem__ (py-spy dump --pid <worker>) and the main process, then cache "
        "or simplify the slow part; more prefetch hides short stalls." + c.slow_txt,
        fix_code=loader_code(c.rec, workers=max(c.workers, 1)),
    )


@rule(ids=("input_bound_cpu_saturated", "too_few_workers", "io_bound", "input_bound"), rank=30)
def input_bound(rec: Recording, m: Metrics) -> list[Finding]:
    """Data-wait in TF Profiler's bands, split by cause: I/O, CPU saturated, too few workers, elsewhere."""
    c = input_case(rec, m)
    if c is None:
        return _input_bound_without_steps(rec, m) if data_wait(rec, m) is None else []
    # A training process that loads serially while other processes hold the cores: its fix is workers
    # (once the competition is gone), not cheaper samples.
    serial = c.workers == 0 and m.others_cores >= th.OTHERS_SHARE * m.usable_cores
    order = (_io_bound, _tiny_steps, _too_few_workers, _cpu_saturated) if serial else (
        _io_bound, _tiny_steps, _cpu_saturated, _too_few_workers)
    for sub in order:
        found = sub(c)
        if found is not None:
            return [found]
    return [_elsewhere(c)]


def _input_bound_without_steps(rec: Recording, m: Metrics) -> list[Finding]:
    """No step split: an idle GPU next to a saturated CPU still points at the input pipeline."""
    if m.gpu_util is None or m.n_system < th.MIN_SYSTEM_SAMPLES:
        return []
    act = m.gpu_sm_activity if m.gpu_sm_activity is not None else m.gpu_util
    if act >= th.GPU_UTIL_LOW or m.cpu_busy_fraction < th.CPU_SATURATED:
        return []
    return [
        Finding(
            id="input_bound_cpu_saturated",
            title="Likely input-bound: CPU saturated, GPU idle",
            severity="moderate",
            confidence=0.5,
            summary=f"The GPU is busy only {act:.0f} % of the time while all {m.usable_cores} usable cores "
            "are busy; the CPU side likely cannot feed it.",
            evidence=[NO_STEPS, cpu_line(m), f"GPU activity {act:.0f} %"] + pipeline_evidence(rec),
            fix="Make preprocessing cheaper (reduced-scale decode, uint8 output, cpuwise.data, GPU decode); "
            "run the job as `cpuwise doctor -- python train.py` to measure the data-wait per step.",
            fix_code=fixes.cheaper_preprocessing(gpu=True),
        )
    ]
