"""TensorBoard scalars (step split, CPU, GPU) under out_dir/tb, when `tensorboard` is installed.

Uses tensorboard's own SummaryWriter (`tensorboard.summary.Writer`) or torch.utils.tensorboard, so it
needs no TensorFlow. Without tensorboard it writes nothing and says why.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from cpuwise._optional import available
from cpuwise._schema import Recording, StepLane
from cpuwise.diagnose.metrics import lanes_of


def lane_name(lane: StepLane) -> str:
    """'rank1', 'node-b_rank1' or 'pid1234': how a lane is named in tags and tables."""
    who = f"rank{lane.rank}" if lane.rank is not None else f"pid{lane.pid}"
    return f"{lane.node}_{who}" if lane.node else who


def _writer(log_dir: Path) -> Any:
    """A scalar writer: tensorboard's own, else torch's (which would import torch, ~2 s, for a report)."""
    try:
        # lazy: optional and heavy; loaded only when TensorBoard scalars are written
        from tensorboard.summary import Writer  # type: ignore[import-not-found]
    except ImportError:
        # lazy: torch is heavy; an older tensorboard without its own writer falls back to torch's
        from torch.utils.tensorboard import SummaryWriter  # type: ignore[attr-defined]

        return SummaryWriter(log_dir=str(log_dir))

    class _Adapter:
        def __init__(self) -> None:
            self.w = Writer(str(log_dir))

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            self.w.add_scalar(tag, float(value), step=step)

        def close(self) -> None:
            self.w.close()

    return _Adapter()


def write_tensorboard(rec: Recording, out_dir: Path) -> tuple[Path | None, str]:
    """(log dir or None, why nothing was written)."""
    if not available("tensorboard"):
        return (
            None,
            "tensorboard is not installed (pip install 'cpuwise[tensorboard]'); TensorBoard scalars skipped",
        )
    log_dir = out_dir / "tb"
    w = _writer(log_dir)
    try:
        lanes = lanes_of(rec)
        for lane in lanes:
            # One point per interval (never per step: a job can make tens of thousands a second), at the
            # number of steps done by its end, so the x axis still counts training steps.
            tag = "step" if len(lanes) == 1 else f"step_{lane_name(lane)}"
            done = 0
            for iv in lane.intervals:
                if iv.n <= 0:
                    continue
                done += iv.n
                w.add_scalar(f"{tag}/data_wait_ms", 1e3 * iv.data_wait_s / iv.n, done)
                w.add_scalar(f"{tag}/compute_ms", 1e3 * iv.compute_s / iv.n, done)
                w.add_scalar(f"{tag}/sync_ms", 1e3 * iv.sync_s / iv.n, done)
                total = iv.data_wait_s + iv.compute_s + iv.sync_s
                w.add_scalar(f"{tag}/total_ms", 1e3 * total / iv.n, done)
                w.add_scalar(f"{tag}/p90_ms", 1e3 * iv.p90_s, done)
                w.add_scalar(f"{tag}/steps_per_s", iv.n / iv.dt, done)
        for i, ss in enumerate(rec.system):
            w.add_scalar("cpu/machine_busy_cores", sum(ss.cpu_percent_per_core) / 100.0, i)
        per_t: dict[float, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for p in rec.processes:
            per_t[p.t][p.role] += p.cpu_percent / 100.0
        for i, t in enumerate(sorted(per_t)):
            for role, v in per_t[t].items():
                w.add_scalar(f"cpu/{role}_cores", v, i)
        gpu_step: dict[int, int] = defaultdict(int)  # samples of several GPUs interleave: count per GPU
        for g in rec.gpus:
            i = gpu_step[g.index]
            gpu_step[g.index] += 1
            if g.util_percent is not None:
                w.add_scalar(f"gpu{g.index}/util_percent", g.util_percent, i)
            if g.sm_activity_percent is not None:
                w.add_scalar(f"gpu{g.index}/sm_activity_percent", g.sm_activity_percent, i)
            if g.mem_used_bytes is not None:
                w.add_scalar(f"gpu{g.index}/mem_used_gib", g.mem_used_bytes / 2**30, i)
    finally:
        w.close()
    return log_dir, ""
