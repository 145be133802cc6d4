"""Rules about how the job ended (hung, crashed) and the closing verdicts (healthy, insufficient data)."""

from __future__ import annotations

import re
import signal

from cpuwise._schema import END_CRASHED, END_HUNG, END_NOT_FOUND, Recording
from cpuwise.diagnose import fixes
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import NO_STEPS, cpu_line, pct, step_line
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics

_HEADER = re.compile(r"^(thread|process|current thread|stack|traceback|fatal python|py-spy|python v)", re.I)


_FRAME = re.compile(r"^\s+(\S.*\(.+:\d+\)|File \".+\", line \d+.*)$")


def innermost_frame(stack: str) -> str:
    """The first frame line of a py-spy or faulthandler dump (both print the innermost call first)."""
    lines = stack.splitlines()
    for line in lines:
        if _FRAME.match(line):
            return line.strip()
    for line in lines:
        line = line.strip()
        if line and not _HEADER.match(line):
            return line
    return ""


def openmp_in_stacks(stacks: dict[str, str]) -> list[str]:
    """pids whose stacks show an OpenMP/BLAS thread pool."""
    return [pid for pid, text in stacks.items() if any(m in text.lower() for m in th.OPENMP_STACK_MARKERS)]


def rule_hung(rec: Recording, m: Metrics) -> list[Finding]:
    if rec.end_reason != END_HUNG:
        return []
    evidence = []
    if rec.steps:
        last = max(rec.steps, key=lambda s: s.t_start + s.total_s)
        end = last.t_start + last.total_s
        evidence.append(
            f"last step #{last.index} ended at {end:.1f} s; no progress for {rec.duration_s - end:.1f} s"
        )
    else:
        evidence.append(NO_STEPS)
    t_tail = rec.duration_s - 5.0
    tail_t = {p.t for p in rec.processes if p.t >= t_tail}
    busy = (
        sum(p.cpu_percent for p in rec.processes if p.t >= t_tail) / len(tail_t) / 100.0 if tail_t else None
    )
    machine = [sum(s.cpu_percent_per_core) / 100.0 for s in rec.system if s.t >= t_tail]
    if busy is not None:
        whole = f" (whole machine {sum(machine) / len(machine):.2f})" if machine else ""
        evidence.append(f"the job's CPU in the last 5 s: {busy:.2f} cores{whole}")
    idle = " with its CPU idle" if busy is not None and busy < 0.25 * m.usable_cores else ""
    for pid, text in sorted(rec.stacks.items()):
        evidence.append(f"pid {pid} waits in: {innermost_frame(text) or '(empty stack)'}")
    omp = openmp_in_stacks(rec.stacks)
    if omp:
        evidence.append(f"OpenMP/BLAS frames in the stacks of pid(s) {', '.join(omp)}")
        return [
            Finding(
                "hung",
                "Hung: OpenMP pool before fork",
                "high",
                0.85,
                f"The job stopped making progress{idle}, and its stacks wait inside "
                "an OpenMP/BLAS "
                "thread pool: the classic hang of an OpenMP pool created in the parent before DataLoader "
                "workers were forked.",
                evidence,
                "Start the workers with 'forkserver' or 'spawn', or do no torch/numpy math in the parent "
                "before the DataLoader starts its workers (or OMP_NUM_THREADS=1).",
                fixes.HUNG_OPENMP,
            )
        ]
    return [
        Finding(
            "hung",
            "Hung: no step progress",
            "high",
            0.8,
            f"The job stopped making progress{idle} and the doctor ended it; "
            + (
                "the stacks of every process are in the report."
                if rec.stacks
                else "no stacks could be taken (install py-spy: pip install 'cpuwise[stacks]')."
            ),
            evidence,
            "Find the frame the processes wait in (stacks below): a lock, a queue with no producer, a dead "
            "worker. A DataLoader timeout turns a silent hang into an error.",
            fixes.HUNG_GENERIC,
        )
    ]


def describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0 or code > 128:
        num = -code if code < 0 else code - 128
        try:
            return f"exit code {code}, signal {signal.Signals(num).name}"
        except ValueError:
            return f"exit code {code}"
    return f"exit code {code}"


def rule_crashed(rec: Recording, m: Metrics) -> list[Finding]:
    if rec.end_reason != END_CRASHED:
        return []
    exc = rec.job_info.get("python_exception") or ""
    last = next((ln.strip() for ln in reversed(str(exc).splitlines()) if ln.strip()), "")
    evidence = [
        describe_exit(rec.exit_code),
        f"ran {rec.duration_s:.1f} s, {len(rec.steps)} step(s) recorded",
    ]
    if last:
        evidence.append(f"exception: {last}")
    killed = rec.exit_code in (-9, 137)
    mem = [s.mem_used_bytes / s.mem_total_bytes for s in rec.system if s.mem_total_bytes]
    if killed and mem and max(mem) >= th.MEM_USED_HIGH:
        evidence.append(f"RAM reached {pct(max(mem))} used before the kill: likely the kernel OOM killer")
    summary = f"The job crashed ({describe_exit(rec.exit_code)})" + (f": {last}" if last else ".")
    return [
        Finding(
            "crashed",
            "The job crashed",
            "high",
            0.95,
            summary,
            evidence,
            "Fix the error above (full traceback in the report); the measurements cover the "
            "run up to the crash.",
            "",
        )
    ]


def enough_data(m: Metrics) -> bool:
    if m.steps is not None:
        return m.steps.n >= th.MIN_STEPS
    return m.n_system >= th.MIN_SYSTEM_SAMPLES


def insufficient_data(rec: Recording, m: Metrics) -> Finding:
    if rec.end_reason == END_NOT_FOUND:
        summary = "The command could not be started, so there is nothing to diagnose."
    else:
        n = m.steps.n if m.steps else 0
        summary = (
            f"Too little data to judge: {n} step(s) and {m.n_system} system sample(s) in "
            f"{rec.duration_s:.1f} s (need {th.MIN_STEPS} steps, or {th.MIN_SYSTEM_SAMPLES} samples)."
        )
    return Finding(
        "insufficient_data",
        "Not enough data",
        "info",
        0.9,
        summary,
        [
            f"{len(rec.steps)} step(s) recorded",
            f"{m.n_system} system sample(s) at {rec.interval_s} s interval",
        ],
        "Let the job run for at least a few dozen steps (e.g. one short epoch), or lower --interval.",
        "cpuwise doctor --interval 0.05 -- python train.py --epochs 1",
    )


def healthy(rec: Recording, m: Metrics) -> Finding:
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
    return Finding(
        "healthy",
        "Healthy: compute-bound" if m.steps is not None else "No bottleneck found",
        "info",
        conf,
        summary,
        evidence,
        "Speed now comes from the model: mixed precision, torch.compile, a larger batch on the GPU, or "
        "`cpuwise optimize` for CPU inference.",
        "model = torch.compile(model)\n"
        "with torch.autocast(device_type='cuda', dtype=torch.bfloat16):\n"
        "    loss = loss_fn(model(x), y)",
    )
