"""Crashed: the job died of an exception or a signal; quotes the exception, names the OOM killer."""

from __future__ import annotations

from cpuwise._schema import END_CRASHED, Recording
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import describe_exit, pct
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics, RankView
from cpuwise.diagnose.registry import rule


def _first_failed(rec: Recording, crashed: list[RankView]) -> RankView | None:
    """The rank whose exception came first (the others usually fail because their peer went away)."""
    order = list((rec.job_info.get("exceptions") or {}) if isinstance(rec.job_info.get("exceptions"), dict)
                 else {})
    return min(crashed, key=lambda r: order.index(str(r.pid)) if str(r.pid) in order else len(order),
               default=None)


@rule(ids=("crashed",), rank=10, ends_job=True)
def crashed(rec: Recording, m: Metrics) -> list[Finding]:
    """The job crashed: its exit code or signal, the last line of its exception, a likely OOM kill."""
    if rec.end_reason != END_CRASHED:
        return []
    exc = rec.job_info.get("python_exception") or ""
    last = next((ln.strip() for ln in reversed(str(exc).splitlines()) if ln.strip()), "")
    evidence = [
        describe_exit(rec.exit_code),
        f"ran {rec.duration_s:.1f} s, {sum(lane.n for lane in m.lanes)} step(s) recorded",
    ]
    if last:
        evidence.append(f"exception: {last}")
    crashed_ranks = [r for r in m.ranks if r.ending.startswith("crashed")]
    first = _first_failed(rec, crashed_ranks)
    for r in m.ranks:
        evidence.append(f"rank {r.rank} (pid {r.pid}): {r.ending} after {r.lane.n if r.lane else 0} step(s)")
    killed = rec.exit_code in (-9, 137)
    mem = [s.mem_used_bytes / s.mem_total_bytes for s in rec.system if s.mem_total_bytes]
    if killed and mem and max(mem) >= th.MEM_USED_HIGH:
        evidence.append(f"RAM reached {pct(max(mem))} used before the kill: likely the kernel OOM killer")
    summary = f"The job crashed ({describe_exit(rec.exit_code)})" + (f": {last}" if last else ".")
    if first is not None:
        others = [r.rank for r in m.ranks if r is not first]
        summary = (f"Rank {first.rank} crashed ({first.ending.removeprefix('crashed: ')}) and the job ended "
                   f"({describe_exit(rec.exit_code)}); rank(s) {', '.join(map(str, others))} ended after it. "
                   "The other findings cover every rank up to the crash.")
    return [
        Finding(
            id="crashed",
            title="The job crashed",
            severity="high",
            confidence=0.95,
            summary=summary,
            evidence=evidence,
            fix="Fix the error above (full traceback in the report); the measurements cover the run up to "
            "the crash.",
        )
    ]
