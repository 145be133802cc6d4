"""Host-device sync stalls: the training loop blocks on the GPU every step."""

from __future__ import annotations

from cpuwise._schema import Recording
from cpuwise.diagnose import fixes
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import pct, step_line
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import rule


@rule(ids=("sync_stalls",), rank=60)
def sync_stalls(rec: Recording, m: Metrics) -> list[Finding]:
    """The host waits for the GPU (.item(), .cpu(), synchronize) a large share of each step."""
    s = m.steps
    if s is None or s.n < th.MIN_STEPS or s.device_sync_share < th.SYNC_SHARE_HIGH:
        return []  # waiting in collectives is not a device stall (see straggler)
    return [
        Finding(
            id="sync_stalls",
            title="Host-device sync stalls",
            severity="high" if s.device_sync_share >= 0.3 else "moderate",
            confidence=0.8,
            summary=f"The host waits for the GPU {pct(s.device_sync_share)} of each step (.item(), .cpu(), "
            "synchronize), so it cannot queue the next step's work meanwhile.",
            evidence=[step_line(m), f"mean device sync {1e3 * (s.mean_sync_s - s.mean_collective_s):.1f} ms "
                      "per step"],
            fix="Keep values on the device and read them back every N steps, not every step.",
            fix_code=fixes.SYNC_STALLS,
        )
    ]
