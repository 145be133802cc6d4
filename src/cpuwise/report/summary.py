"""The tables both the terminal and the HTML report show, as plain rows (render-neutral)."""

from __future__ import annotations

import shlex
from collections import defaultdict
from dataclasses import asdict, dataclass, replace

from cpuwise._schema import (
    END_CRASHED,
    END_EXITED,
    END_HUNG,
    END_INTERRUPTED,
    END_NOT_FOUND,
    PipelineStats,
    ProcessSample,
    Recording,
)
from cpuwise.diagnose.evidence import describe_exit
from cpuwise.diagnose.metrics import Metrics

ROLE_ORDER = {"main": 0, "rank": 1, "worker": 2, "ray-worker": 3, "ray-idle": 4, "ray-system": 5, "child": 6}

_ENDINGS = {
    END_EXITED: "ran to completion",
    END_CRASHED: "crashed",
    END_INTERRUPTED: "was interrupted",
    END_HUNG: "hung and was stopped by the doctor",
    END_NOT_FOUND: "could not be started",
}


def cleaned(rec: Recording, m: Metrics) -> Recording:
    """`rec` with the samples `m` was measured on (sampler glitches dropped): what the reports show."""
    return replace(rec, system=m.sanitized.system, processes=m.sanitized.processes)


def command_text(rec: Recording) -> str:
    """The job's command as a shell would read it."""
    return shlex.join(rec.command) if rec.command else "(no command)"


def ending_text(rec: Recording) -> str:
    """'The job ran to completion (exit code 0) after 12.3 s.'"""
    how = _ENDINGS.get(rec.end_reason, rec.end_reason)
    return f"The job {how} ({describe_exit(rec.exit_code)}) after {rec.duration_s:.1f} s."


@dataclass
class StepRow:
    """One part of the step: mean ms and share of the step."""

    part: str
    mean_ms: float
    share: float


def step_rows(m: Metrics) -> list[StepRow]:
    """Data-wait, compute and sync: mean ms per step and share of the step (none without steps)."""
    s = m.steps
    if s is None:
        return []
    return [
        StepRow("data-wait", 1e3 * s.mean_wait_s, s.wait_share),
        StepRow("compute", 1e3 * s.mean_compute_s, s.compute_share),
        StepRow("sync", 1e3 * s.mean_sync_s, s.sync_share),
    ]


def step_caption(m: Metrics) -> str:
    """How many steps the split covers, or why there is none."""
    s = m.steps
    if s is None:
        return "Step split unavailable: no step records (not a Python job run with cpuwise instrumentation)."
    return (
        f"{s.n} steps measured (first {s.skipped} of {s.n_total} skipped as warm-up), "
        f"mean step {1e3 * s.mean_total_s:.1f} ms"
    )


@dataclass
class ProcRow:
    """One process of the job over the run."""

    pid: int
    role: str
    name: str
    mean_cpu: float  # percent of one core
    peak_cpu: float
    peak_rss: int
    threads: int
    lifetime_s: float


def process_rows(rec: Recording) -> list[ProcRow]:
    """One row per process, main first, then workers, then other children (by pid)."""
    by_pid: dict[int, list[ProcessSample]] = defaultdict(list)
    for p in rec.processes:
        by_pid[p.pid].append(p)
    rows = []
    for pid, lst in by_pid.items():
        lst.sort(key=lambda p: p.t)
        vals = [p.cpu_percent for p in lst[1:]] or [lst[0].cpu_percent]
        rows.append(
            ProcRow(
                pid,
                lst[-1].role,  # the latest: a job names its workers only once they start
                lst[0].name,
                sum(vals) / len(vals),
                max(vals),
                max(p.rss_bytes for p in lst),
                max(p.num_threads for p in lst),
                lst[-1].t - lst[0].t,
            )
        )
    rows.sort(key=lambda r: (ROLE_ORDER.get(r.role, 9), r.pid))
    return rows


RANK_HEADER = ["rank", "pid", "steps", "data-wait", "compute", "sync", "step ms", "workers", "CPU", "GPU",
               "ended"]


def rank_rows(m: Metrics) -> list[list[str]]:
    """One row per rank of a distributed job: its step split, workers, CPU, GPU and how it ended."""
    rows = []
    for r in m.ranks:
        s = r.steps
        split = ([f"{100 * s.wait_share:.0f} %", f"{100 * s.compute_share:.0f} %",
                  f"{100 * s.sync_share:.0f} %", f"{1e3 * s.mean_total_s:.1f}"]
                 if s is not None else ["-", "-", "-", "-"])
        workers = f"{r.workers_seen}/{r.workers_configured if r.workers_configured is not None else '?'}"
        each = f" ({r.worker_cpu_each:.2f} each)" if r.worker_cpu_each is not None else ""
        rows.append([f"{r.rank}" + (f" @{r.node}" if r.node else ""), str(r.pid),
                     str(r.lane.n if r.lane is not None else 0), *split, workers + each,
                     f"{r.cpu_cores:.2f}", "-" if r.gpu is None else str(r.gpu), r.ending])
    return rows


def ranks_caption(m: Metrics) -> str:
    """Who launched the ranks, and how to read the table."""
    launchers = sorted({r.launcher for r in m.ranks if r.launcher})
    return (f"{len(m.ranks)} ranks" + (f", launched by {', '.join(launchers)}" if launchers else "")
            + "; workers: seen at once / configured; CPU: cores of the rank process itself.")


def gpu_text(rec: Recording, m: Metrics) -> str:
    """One line on the GPU: its mean utilisation / SM activity / memory, or why it was not measured."""
    if not rec.gpu.available:
        return f"GPU metrics unavailable: {rec.gpu.reason or 'no reason recorded'}"
    if m.gpu_util is None:
        return f"GPU {', '.join(rec.gpu.devices) or '?'}: no samples recorded"
    parts = [f"GPU {', '.join(rec.gpu.devices) or '?'}: utilisation {m.gpu_util:.0f} %"]
    if m.gpu_sm_activity is not None:
        parts.append(f"SM activity {m.gpu_sm_activity:.0f} % ({rec.gpu.sm_metric or 'GPM'})")
    if m.gpu_mem_fraction is not None:
        parts.append(f"memory up to {100 * m.gpu_mem_fraction:.0f} %")
    return ", ".join(parts)


def stage_rows(stats: PipelineStats) -> list[list[str]]:
    """[name, kind, items, ms/item, workers, wait, errors] per stage of one pipeline."""
    return [
        [
            s.name,
            s.kind,
            str(s.items),
            f"{s.per_item_ms:.2f}",
            str(s.workers if s.workers is not None else "-"),
            f"{100 * s.wait_ratio:.0f} %",
            str(s.errors),
        ]
        for s in stats.stages
    ]


STAGE_HEADER = ["stage", "kind", "items", "ms/item", "workers", "wait", "errors"]


def stats_caption(stats: PipelineStats) -> str:
    """The pipeline's name, epoch, items, consumer wait, config and (GPU loader) decode mode."""
    cfg_txt = ", ".join(f"{k}={v}" for k, v in asdict(stats.config).items() if k != "ram_budget_bytes")
    wait = stats.consumer_wait_ratio
    wait_txt = f", consumer waited {100 * wait:.0f} %" if wait is not None else ""
    decode = stats.decode
    decode_txt = "; decode " + ", ".join(f"{k}={v}" for k, v in decode.items()) if decode else ""
    return (
        f"cpuwise.data pipeline '{stats.pipeline}' epoch {stats.epoch}: "
        f"{stats.items_out} items out{wait_txt}; config {cfg_txt or 'n/a'}{decode_txt}"
    )
