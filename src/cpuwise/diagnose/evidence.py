"""Evidence lines shared by the rules: numbers from the recording, formatted the same way everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cpuwise._schema import Recording
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics

Rule = Callable[[Recording, Metrics], list[Finding]]
NO_STEPS = "step split unavailable: no step records (not a Python job run with cpuwise instrumentation)"


def num(value: object, default: float = 0.0) -> float:
    """A float from a value reported by the job (which may be missing or malformed)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def mib(b: float) -> str:
    return f"{b / 2**20:.0f} MiB"


def band(share: float) -> str | None:
    """TF Profiler's input-bound band of a data-wait share: None (fine), "moderate" or "high"."""
    if share >= th.INPUT_BOUND_HIGH:
        return "high"
    if share >= th.INPUT_BOUND_MODERATE:
        return "moderate"
    return None


def cpu_line(m: Metrics) -> str:
    roles = ", ".join(f"{r} {c:.2f}" for r, c in sorted(m.role_cpu_cores.items()))
    sys_part = f"; whole machine {m.system_busy_cores:.2f}" if m.system_busy_cores is not None else ""
    return (
        f"CPU busy {pct(m.cpu_busy_fraction)} of {m.usable_cores} usable cores "
        f"(job cores: {roles or 'no process samples'}{sys_part})"
    )


def step_line(m: Metrics) -> str:
    s = m.steps
    if s is None:
        return NO_STEPS
    return (
        f"data-wait {pct(s.wait_share)} of step time over {s.n} steps (first {s.skipped} skipped as "
        f"warm-up); compute {pct(s.compute_share)}, sync {pct(s.sync_share)}; "
        f"mean step {1e3 * s.mean_total_s:.1f} ms"
    )


def config_of(stats: dict[str, Any]) -> dict[str, Any]:
    cfg = stats.get("config")
    return cfg if isinstance(cfg, dict) else {}


def stats_of(rec: Recording) -> list[dict[str, Any]]:
    return [s for s in rec.pipeline_stats if isinstance(s, dict)]


WORK_STAGE_KINDS = ("map", "filter", "source")


def slowest_stage(stats: dict[str, Any]) -> dict[str, Any] | None:
    """The working stage with the least throughput: per-item time divided by its workers.

    Only stages that do per-sample work count: a prefetch / batch / repeat stage's time is mostly
    waiting on the stages before it, so it would always look slowest.
    """
    stages = [
        s for s in stats.get("stages", []) or []
        if isinstance(s, dict) and s.get("per_item_ms") and s.get("kind", "map") in WORK_STAGE_KINDS
    ]
    if not stages:
        return None
    return max(stages, key=lambda s: num(s["per_item_ms"]) / max(1.0, num(s.get("workers"), 1.0)))


def pipeline_evidence(rec: Recording) -> list[str]:
    out = []
    for st in stats_of(rec):
        cfg = config_of(st)
        line = f"cpuwise.data '{st.get('pipeline', '?')}'"
        if "consumer_wait_ratio" in st:
            line += f": consumer waited {pct(num(st['consumer_wait_ratio']))}"
        slow = slowest_stage(st)
        if slow:
            line += (
                f"; slowest stage '{slow.get('name')}' {num(slow['per_item_ms']):.1f} ms/item on "
                f"{slow.get('workers') or 1} worker(s)"
            )
        if cfg:
            line += (
                f"; config workers={cfg.get('workers')} backend={cfg.get('backend')} "
                f"prefetch={cfg.get('prefetch')} cpu_budget={cfg.get('cpu_budget')}"
            )
        out.append(line)
    return out


def gpu_activity(m: Metrics) -> str:
    """'GPU utilisation 4 %, SM activity 0 %' (whichever were measured)."""
    parts = []
    if m.gpu_util is not None:
        parts.append(f"utilisation {m.gpu_util:.0f} %")
    if m.gpu_sm_activity is not None:
        parts.append(f"SM activity {m.gpu_sm_activity:.0f} %")
    return "GPU " + ", ".join(parts) if parts else "no GPU samples"
