"""Worker start-up every epoch: a DataLoader without persistent_workers forks fresh workers at each
epoch, and each rebuilds what the Dataset builds on first use, while the training loop waits."""

from __future__ import annotations

from cpuwise._schema import Recording
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import band, pct, step_line
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.idioms import idiom_of, persistent_code
from cpuwise.diagnose.metrics import Metrics, configured_workers
from cpuwise.diagnose.registry import rule


@rule(ids=("worker_startup",), rank=25)
def worker_startup(rec: Recording, m: Metrics) -> list[Finding]:
    """The first step of every epoch waits for fresh workers to start: keep them alive."""
    level = band(m.restart_wait_share)
    if level is None or m.restarts < th.STARTUP_MIN_RESTARTS or m.steps is None:
        return []
    lanes = [lane for lane in m.lanes if lane.epoch_starts > 1]
    per_epoch = m.restart_wait_share * sum(lane.total_s for lane in m.lanes) / max(1, m.restarts)
    steps_per_epoch = sum(lane.n for lane in lanes) / max(1, sum(lane.epoch_starts for lane in lanes))
    workers = max(configured_workers(rec).values(), default=0)
    idiom = idiom_of(rec)
    return [
        Finding(
            id="worker_startup",
            title="Workers restarted every epoch",
            severity=str(level),
            confidence=0.85,
            summary=f"Each of {m.restarts} new epochs starts {workers} fresh data worker(s) and waits "
            f"{per_epoch:.2f} s for its first batch: {pct(m.restart_wait_share)} of all step time goes to "
            "worker start-up (fork, and whatever the Dataset builds on first use in each worker).",
            evidence=[
                f"{m.restarts} epoch restart(s), {steps_per_epoch:.0f} steps per epoch; the first step of "
                f"each waits {per_epoch:.2f} s on average",
                step_line(m),
                f"DataLoader: num_workers={workers}, persistent_workers=False",
            ],
            fix="Keep the workers alive across epochs (persistent_workers=True"
            + (", dataloader_persistent_workers=True in TrainingArguments" if idiom.name == "hf" else "")
            + "), and build expensive Dataset state once in __init__ rather than lazily in each worker.",
            fix_code=persistent_code(rec, workers),
        )
    ]
