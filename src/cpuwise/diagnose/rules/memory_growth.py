"""Memory growth in the data workers (USS, else RSS), the copy-on-read of Python objects after fork."""

from __future__ import annotations

from cpuwise._schema import Recording
from cpuwise.diagnose import fixes
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import mib
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import rule


def _slope(series: list[tuple[float, int]]) -> float:
    """Least-squares slope in bytes per second."""
    n = len(series)
    mt = sum(t for t, _ in series) / n
    mv = sum(v for _, v in series) / n
    den = sum((t - mt) ** 2 for t, _ in series)
    return sum((t - mt) * (v - mv) for t, v in series) / den if den > 0 else 0.0


@rule(ids=("memory_growth",), rank=12)  # before speed: it ends in swap or the OOM killer
def memory_growth(rec: Recording, m: Metrics) -> list[Finding]:
    """Data workers whose memory keeps growing: copy-on-read of the Dataset's Python objects."""
    growing = []
    for pid, series in m.mem_series.items():
        private = any(p.uss_bytes is not None for p in m.sanitized.processes if p.pid == pid)
        if len(series) < (2 if private else 3) or series[-1][0] - series[0][0] < th.MEM_GROWTH_MIN_DURATION_S:
            continue
        per_min = _slope(series) * 60.0
        first, last = series[0][1], series[-1][1]
        rel = (last - first) / first if first > 0 else 0.0
        if (per_min >= th.MEM_GROWTH_BYTES_PER_MIN and rel >= th.MEM_GROWTH_RELATIVE
                and last - first >= th.MEM_GROWTH_MIN_BYTES):
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
            id="memory_growth",
            title="Memory grows in the data workers",
            severity="high" if len(growing) >= 2 or total >= th.MEM_GROWTH_HIGH_BYTES_PER_MIN else "moderate",
            confidence=0.75,
            summary=f"{len(growing)} worker process(es) grow by {mib(total)}/min together: the classic "
            "copy-on-read of Python objects in the Dataset after fork, which ends in swap or the OOM killer.",
            evidence=evidence,
            fix="Hold the Dataset's index (paths, labels) in numpy arrays instead of Python lists/dicts.",
            fix_code=fixes.COPY_ON_READ,
        )
    ]
