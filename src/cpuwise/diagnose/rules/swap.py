"""Swapping: the job's memory no longer fits in RAM."""

from __future__ import annotations

from cpuwise._schema import Recording
from cpuwise.diagnose import fixes
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import mib, pct
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import rule


@rule(ids=("swap",), rank=40)
def swap(rec: Recording, m: Metrics) -> list[Finding]:
    """Swap use grew during the job: it pushes out pages it needs."""
    if not rec.system:
        return []
    start = rec.system[0].swap_used_bytes
    peak = max(s.swap_used_bytes for s in rec.system)
    if peak - start < th.SWAP_GROWTH_BYTES:
        return []
    used = max(s.mem_used_bytes / s.mem_total_bytes for s in rec.system if s.mem_total_bytes)
    return [
        Finding(
            id="swap",
            title="The job is swapping",
            severity="high",
            confidence=0.85,
            summary=f"Swap use grew by {mib(peak - start)} during the job: pages it needs go to disk, and "
            "every touch of them costs milliseconds.",
            evidence=[
                f"swap {mib(start)} -> {mib(peak)}",
                f"RAM up to {pct(used)} used" + (" (near full)" if used >= th.MEM_USED_HIGH else ""),
            ],
            fix="Use less memory per worker and fewer batches in flight (num_workers, prefetch_factor), or a "
            "RAM budget in cpuwise.data.",
            fix_code=fixes.SWAP,
        )
    ]
