"""Stragglers: in a distributed job every step ends in a collective, so the slowest rank sets the pace
and the others wait for it (in DDP's gradient all-reduce inside backward, or in explicit collectives)."""

from __future__ import annotations

from cpuwise._schema import Recording
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.evidence import pct
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.idioms import idiom_of, loader_code
from cpuwise.diagnose.metrics import Metrics, RankView
from cpuwise.diagnose.registry import rule


def _cause(r: RankView) -> str:
    """What makes rank `r` slow to deliver its data: its workers' load."""
    if r.workers_configured == 0 or (r.workers_configured is None and not r.workers_seen):
        return f"rank {r.rank} loads its data in the training process itself (no DataLoader workers)"
    each = f", each busy {r.worker_cpu_each:.2f} of a core" if r.worker_cpu_each is not None else ""
    busy = r.worker_cpu_each is not None and r.worker_cpu_each >= th.WORKER_BUSY
    return (f"rank {r.rank}'s {r.workers_seen or r.workers_configured} data worker(s){each}"
            + (": its samples cost more to prepare than the other ranks'" if busy else ""))


@rule(ids=("straggler",), rank=22)
def straggler(rec: Recording, m: Metrics) -> list[Finding]:
    """One rank waits for data far more than the others, and the others wait for it in the collectives."""
    ranks = [r for r in m.ranks if r.steps is not None and r.steps.n >= th.MIN_STEPS]
    if len(ranks) < 2:
        return []
    counts = [r.steps.n for r in ranks if r.steps is not None]
    if (max(counts) - min(counts)) > th.STRAGGLER_STEP_SPREAD * max(counts):
        return []  # not in lock-step: the ranks do not wait for each other every step
    slow = max(ranks, key=lambda r: r.steps.wait_share if r.steps else 0.0)
    fast = min(ranks, key=lambda r: r.steps.wait_share if r.steps else 0.0)
    assert slow.steps is not None and fast.steps is not None
    gap = slow.steps.wait_share - fast.steps.wait_share
    if gap < th.STRAGGLER_WAIT_GAP:
        return []
    # The slowest rank arrives last at each step's collective, so its own compute is the real work; what
    # another rank spends beyond it (plus its timed collective waits) is waiting for the straggler.
    others = [r for r in ranks if r is not slow]
    losses = {r.rank: max(0.0, (r.steps.mean_compute_s if r.steps else 0.0) - slow.steps.mean_compute_s)
              + (r.steps.mean_sync_s if r.steps else 0.0) for r in others}
    lost = sum(losses.values()) / len(losses)
    step = sum(r.steps.mean_total_s for r in others if r.steps) / len(others)
    need = max((slow.workers_configured or 0) + 1,
               round(max(1, slow.workers_configured or 1) / max(1e-9, 1.0 - gap)))
    idiom = idiom_of(rec)
    evidence = [
        f"rank {r.rank} (pid {r.pid}): data-wait {pct(r.steps.wait_share)}, compute "
        f"{pct(r.steps.compute_share)}, sync {pct(r.steps.sync_share)} of a "
        f"{1e3 * r.steps.mean_total_s:.1f} ms step over {r.steps.n} steps; {r.workers_seen} worker(s)"
        + (f" at {r.worker_cpu_each:.2f} cores each" if r.worker_cpu_each is not None else "")
        for r in ranks if r.steps is not None
    ]
    evidence.append(
        "the other ranks wait for it "
        + ", ".join(f"rank {k}: {1e3 * v:.1f} ms per step" for k, v in sorted(losses.items()))
        + " (their compute beyond the straggler's, which arrives last, plus their timed collectives)"
    )
    return [
        Finding(
            id="straggler",
            title=f"Straggler: rank {slow.rank} holds the others back",
            severity="high" if lost >= th.INPUT_BOUND_HIGH * step else "moderate",
            confidence=0.8,
            summary=f"Rank {slow.rank} waits for data {pct(slow.steps.wait_share)} of each step (rank "
            f"{fast.rank}: {pct(fast.steps.wait_share)}); every step ends in a collective, so the other "
            f"ranks wait for it about {1e3 * lost:.0f} ms per step ({pct(lost / step if step else 0.0)} of "
            f"their step time). Cause: {_cause(slow)}.",
            evidence=evidence,
            fix=f"Speed up rank {slow.rank}'s input: give its loader more workers ({idiom.workers_param}="
            f"{need} on that rank, or on all), or balance the work across ranks (shard by cost, not by "
            "count), or make its samples cheaper to prepare.",
            fix_code=f"# on rank {slow.rank} (or every rank: each gets its own workers)\n"
            + loader_code(rec, workers=need, comment=f"rank {slow.rank} waited {pct(slow.steps.wait_share)}"),
        )
    ]
