"""Hung: the doctor ended a job that made no step progress; the stacks say where it waits."""

from __future__ import annotations

import re

from cpuwise._schema import END_HUNG, Recording
from cpuwise.diagnose import fixes
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import NO_STEPS
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import rule

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


@rule(ids=("hung",), rank=0, ends_job=True)
def hung(rec: Recording, m: Metrics) -> list[Finding]:
    """No step progress until the doctor ended the job; names an OpenMP pool created before fork."""
    if rec.end_reason != END_HUNG:
        return []
    evidence = []
    lanes = [lane for lane in m.lanes if lane.n]
    if lanes:
        last = max(lanes, key=lambda lane: lane.end_t)
        evidence.append(
            f"last step #{last.n - 1} ended at {last.end_t:.1f} s; no progress for "
            f"{rec.duration_s - last.end_t:.1f} s"
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
                id="hung",
                title="Hung: OpenMP pool before fork",
                severity="high",
                confidence=0.85,
                summary=f"The job stopped making progress{idle}, and its stacks wait inside an OpenMP/BLAS "
                "thread pool: the classic hang of an OpenMP pool created in the parent before DataLoader "
                "workers were forked.",
                evidence=evidence,
                fix="Start the workers with 'forkserver' or 'spawn', or do no torch/numpy math in the parent "
                "before the DataLoader starts its workers (or OMP_NUM_THREADS=1).",
                fix_code=fixes.HUNG_OPENMP,
            )
        ]
    stacks = (
        "the stacks of every process are in the report."
        if rec.stacks
        else "no stacks could be taken (install py-spy: pip install 'cpuwise[stacks]')."
    )
    return [
        Finding(
            id="hung",
            title="Hung: no step progress",
            severity="high",
            confidence=0.8,
            summary=f"The job stopped making progress{idle} and the doctor ended it; {stacks}",
            evidence=evidence,
            fix="Find the frame the processes wait in (stacks below): a lock, a queue with no producer, a "
            "dead worker. A DataLoader timeout turns a silent hang into an error.",
            fix_code=fixes.HUNG_GENERIC,
        )
    ]
