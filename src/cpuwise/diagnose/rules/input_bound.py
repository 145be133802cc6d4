"""Input-bound: the training loop waits for data (TF Profiler's bands), split by cause.

One rule, four findings, tried in this order (cause before symptom): the CPU is saturated
(`input_bound_cpu_saturated`), the job waits on storage (`io_bound`), free cores but too few workers
(`too_few_workers`), else the wait is elsewhere (`input_bound`). Without step records, an idle GPU
next to a saturated CPU still points at the input pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import rule


def data_wait(rec: Recording, m: Metrics) -> tuple[float, str] | None:
    """The data-wait share and where it came from: the steps, else cpuwise.data's consumer wait."""
    if m.steps is not None and m.steps.n >= th.MIN_STEPS:
        return m.steps.wait_share, "steps"
    ratios = [s.consumer_wait_ratio for s in rec.pipeline_stats if s.consumer_wait_ratio is not None]
    if ratios:
        return max(ratios), "cpuwise.data consumer_wait_ratio"
    return None


def current_workers(rec: Recording, m: Metrics) -> int:
    """The data workers today: the first cpuwise.data pipeline's, else the DataLoader's, else those seen."""
    if rec.pipeline_stats:
        return rec.pipeline_stats[0].config.workers
    return m.workers_configured if m.workers_configured is not None else m.workers_seen


def workers_needed(workers: int, share: float, m: Metrics) -> int:
    """Workers to hide the data-wait: today's producers deliver a batch per step time T, the loop needs
    one per (T - wait), so scale by T / (T - wait); with no workers the main process loads, needing
    wait / compute workers. Capped at the usable cores (the main process mostly waits)."""
    busy = max(1e-9, 1.0 - share)
    need = math.ceil(share / busy) if workers == 0 else math.ceil(workers / busy - 1e-9)
    return max(1, min(m.usable_cores, need))


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

    def finding(self, *, id: str, title: str, summary: str, fix: str, fix_code: str,
                extra: Sequence[str] = ()) -> Finding:
        """A finding of this case: its severity, confidence and shared evidence, plus `extra` lines."""
        return Finding(id=id, title=title, severity=self.severity, confidence=self.confidence,
                       summary=summary, evidence=self.evidence + list(extra), fix=fix, fix_code=fix_code)


def input_case(rec: Recording, m: Metrics) -> InputCase | None:
    """The input-bound case of `rec`, or None when data-wait is under the moderate band / unknown."""
    dw = data_wait(rec, m)
    if dw is None or band(dw[0]) is None:
        return None
    share, source = dw
    workers = current_workers(rec, m)
    per = f", {m.worker_cpu_each:.2f} cores each" if m.worker_cpu_each is not None else ""
    evidence = [step_line(m) if source == "steps" else f"data-wait {pct(share)} ({source}); {NO_STEPS}"]
    evidence += [
        cpu_line(m),
        f"{workers} data worker(s) configured, {m.workers_seen} worker process(es) seen{per}",
    ]
    evidence += pipeline_evidence(rec)
    if m.gpu_util is not None:
        evidence.append(f"{gpu_activity(m)}: the GPU waits for the same data")
    others = (m.system_busy_cores or 0.0) - m.job_cpu_cores
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


def _cpu_saturated(c: InputCase) -> Finding | None:
    m = c.m
    if m.cpu_busy_fraction < th.CPU_SATURATED:
        return None
    shared = (
        f" ({c.others:.1f} of them with other processes)"
        if c.others >= th.OTHERS_SHARE * m.usable_cores
        else ""
    )
    return c.finding(
        id="input_bound_cpu_saturated",
        title="Input-bound: preprocessing saturates the CPU",
        summary=f"{c.head} while all {m.usable_cores} usable cores are busy{shared}: preprocessing needs "
        "more CPU than the job gets, so more workers will not help.",
        fix="Make each sample cheaper: decode JPEGs at reduced scale, output uint8 and normalise on the "
        "device, use cpuwise.data (fast decoder, autotuned workers) or decode on the GPU." + c.slow_txt,
        fix_code=fixes.cheaper_preprocessing(gpu=c.rec.gpu.available),
    )


def _io_bound(c: InputCase) -> Finding | None:
    m, signals = c.m, []
    if m.iowait_percent is not None and m.iowait_percent >= th.IOWAIT_HIGH:
        signals.append(f"iowait {m.iowait_percent:.0f} %")
    if m.disk_sleep_share >= th.DISK_SLEEP_SHARE:
        signals.append(f"{pct(m.disk_sleep_share)} of worker samples in disk sleep")
    if m.read_rate_bps >= th.READ_RATE_HIGH:
        signals.append(f"reading {m.read_rate_bps / 1e6:.0f} MB/s")
    if m.cpu_busy_fraction >= th.IO_CPU_IDLE or not signals:
        return None
    return c.finding(
        id="io_bound",
        title="Input-bound: waiting on storage",
        summary=f"{c.head} while the CPU is mostly idle and the job waits on reads ({', '.join(signals)}).",
        extra=["I/O: " + ", ".join(signals)],
        fix="Read from faster storage: cache decoded/resized samples on local SSD, pack small files into "
        "shards, and overlap blocking reads with more I/O threads.",
        fix_code=fixes.IO_BOUND,
    )


def _too_few_workers(c: InputCase) -> Finding | None:
    m = c.m
    free = m.usable_cores * (1.0 - m.cpu_busy_fraction)
    need = workers_needed(c.workers, c.share, m)
    busy_workers = c.workers == 0 or (m.worker_cpu_each or 0.0) >= th.WORKER_BUSY
    if free < th.MIN_FREE_CORES or need <= c.workers or not busy_workers:
        return None
    return c.finding(
        id="too_few_workers",
        title=f"Input-bound: too few workers ({c.workers}) for the free cores",
        summary=f"{c.head} while {free:.1f} of {m.usable_cores} cores sit idle: raise the data workers from "
        f"{c.workers} to {need}.",
        extra=[
            f"{free:.1f} cores idle on average; {need} workers would hide the wait (today's "
            f"{max(c.workers, 1)} producer(s) x step / (step - wait), capped at the cores)"
        ],
        fix=f"Raise num_workers to {need} (the usable cores: {m.usable_cores}).",
        fix_code=fixes.more_workers(need, c.uses_cpuwise_data),
    )


def _elsewhere(c: InputCase) -> Finding:
    s = c.m.steps
    c.confidence *= 0.9
    if s is not None and s.mean_total_s < th.TINY_STEP_S:
        return c.finding(
            id="input_bound",
            title="Input-bound",
            summary=f"{c.head}; the CPU is not saturated and the workers are not busy: steps this short are "
            "dominated by the loader's per-batch overhead.",
            extra=[
                f"steps take only {1e3 * s.mean_total_s:.1f} ms: a DataLoader's fixed cost per batch "
                "(pickling through a queue, collate, worker start-up each epoch) is of the same order"
            ],
            fix="Give each step more work (a larger batch), keep workers alive across epochs "
            "(persistent_workers=True), or index in-memory tensors directly without worker processes."
            + c.slow_txt,
            fix_code=fixes.TINY_STEPS,
        )
    return c.finding(
        id="input_bound",
        title="Input-bound",
        summary=f"{c.head}; the CPU is not saturated and the workers are not busy, so the wait is elsewhere "
        "(slow storage or network without iowait, locks, a slow collate or pin_memory).",
        fix="Profile one worker's __getitem__ (py-spy dump --pid <worker>), then cache or simplify the slow "
        "part; more prefetch hides short stalls." + c.slow_txt,
        fix_code=fixes.more_workers(max(c.workers, 1), c.uses_cpuwise_data),
    )


@rule(ids=("input_bound_cpu_saturated", "too_few_workers", "io_bound", "input_bound"), rank=30)
def input_bound(rec: Recording, m: Metrics) -> list[Finding]:
    """Data-wait in TF Profiler's bands, split by cause: CPU saturated, I/O, too few workers, elsewhere."""
    c = input_case(rec, m)
    if c is None:
        return _input_bound_without_steps(rec, m) if data_wait(rec, m) is None else []
    for sub in (_cpu_saturated, _io_bound, _too_few_workers):
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
