"""Pure facts for going past one machine: the capacity plan, and which processes belong to Ray.

**Capacity plan.** From what a pipeline measured (each stage's CPU seconds per delivered sample,
`PipelineStats`) and what the consumer needs (its step rate when data is ready, times samples per
step), how many cores of preprocessing keep the consumer from waiting, how many nodes that is, and
whether this machine has them:

    cores needed = target samples/s x sum over stages of (CPU seconds per delivered sample)

A stage's CPU seconds are its own work: worker seconds for maps, its exclusive time for stages that
run in the consumer's process (a prefetch stage's time is waiting, not work, and does not count).
Dividing by the samples delivered (not the stage's own item count) charges filtered-out samples
and per-batch work to what the consumer receives. `capacity_plan` is the arithmetic (numbers in,
tested by hand); `plan_from_recording` reads a doctor Recording; `plan_line` is the one line the
doctor's report prints when the job is CPU-saturated.

**Ray processes.** `ray_role(name, cmdline)` says what a Ray process is, for the doctor's process
tree: a worker running a task or actor (CPU spent preprocessing), an idle worker, or Ray's own
system processes (raylet, GCS, agents, monitors).

Standard library and the leaves only: the doctor, the CLI and cpuwise.data all call it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from cpuwise._schema import PipelineStats, Recording, StageEntry

NOT_WORK = {"prefetch", "pad"}  # stage kinds whose time is waiting on upstream, not CPU work


@dataclass(frozen=True)
class StageNeed:
    """One stage's cost and the cores it needs at the target rate."""

    name: str
    kind: str
    cpu_s_per_sample: float
    per_core_samples_s: float  # samples one core delivers through this stage alone
    cores: float


@dataclass(frozen=True)
class CapacityPlan:
    """How many cores and nodes of preprocessing a job needs to stop waiting for data."""

    target_samples_s: float | None  # None: no consumer rate known (a pipeline measured alone)
    target_from: str  # where the target came from, in words
    stages: list[StageNeed]
    cores_needed: float | None
    cores_here: float  # cores this machine can give preprocessing (usable minus reserved)
    reserved_cores: float  # kept for the training processes
    cores_per_node: float
    nodes_needed: int | None
    enough_here: bool | None
    samples_s_here: float  # what this machine's spare cores deliver
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One sentence: the need, the nodes, the verdict."""
        here = (f"this machine's {self.cores_here:g} spare cores deliver {self.samples_s_here:,.0f} "
                "samples/s")
        if self.target_samples_s is None or self.cores_needed is None:
            return (f"{here}; each 1,000 samples/s needs {1000 * self.cpu_s_per_sample:.1f} cores "
                    "(give --target-rate for a plan)")
        verdict = "enough" if self.enough_here else "not enough: scale out (ds.to_ray())"
        return (f"{self.target_samples_s:,.0f} samples/s ({self.target_from}) need "
                f"{self.cores_needed:.1f} cores of preprocessing = {self.nodes_needed} node(s) of "
                f"{self.cores_per_node:g} cores; {here}: {verdict}")

    @property
    def cpu_s_per_sample(self) -> float:
        return sum(s.cpu_s_per_sample for s in self.stages)

    def lines(self) -> list[str]:
        """The plan as text: one line per stage, then the summary and notes."""
        out = [f"{'stage':<40} {'CPU ms/sample':>13} {'samples/s/core':>15} {'cores':>8}"]
        for s in self.stages:
            cores = f"{s.cores:8.1f}" if self.target_samples_s is not None else f"{'-':>8}"
            out.append(f"{s.name[:40]:<40} {1000 * s.cpu_s_per_sample:13.3f} {s.per_core_samples_s:15,.0f} "
                       f"{cores}")
        return out + [self.summary()] + self.notes


def capacity_plan(stages: Sequence[tuple[str, str, float]], *, target_samples_s: float | None,
                  target_from: str = "", usable_cores: float, reserved_cores: float = 1.0,
                  cores_per_node: float | None = None) -> CapacityPlan:
    """The plan from per-stage costs (pure arithmetic).

    Args:
        stages: (name, kind, CPU seconds per delivered sample) of each stage that does work.
        target_samples_s: samples per second the consumer needs; None: report capacity only.
        usable_cores: cores of this machine (affinity and cgroup quota honoured).
        reserved_cores: cores kept for the training processes (one per rank on the machine).
        cores_per_node: the nodes' size for the node count (default: this machine's).
    """
    per_node = float(cores_per_node if cores_per_node else usable_cores)
    here = max(0.0, usable_cores - reserved_cores)
    total = sum(c for _, _, c in stages)
    needs = []
    for name, kind, cost in stages:
        rate = 1.0 / cost if cost > 0 else math.inf
        needs.append(StageNeed(name, kind, cost, rate,
                               (target_samples_s or 0.0) * cost))
    cores = None if target_samples_s is None else target_samples_s * total
    nodes = None if cores is None else max(1, math.ceil(cores / per_node - 1e-9))
    return CapacityPlan(
        target_samples_s=target_samples_s, target_from=target_from, stages=needs, cores_needed=cores,
        cores_here=here, reserved_cores=reserved_cores, cores_per_node=per_node, nodes_needed=nodes,
        enough_here=None if cores is None else cores <= here + 1e-9,
        samples_s_here=here / total if total > 0 else math.inf,
    )


def stage_costs(stats: PipelineStats) -> tuple[list[tuple[str, str, float]], int | None]:
    """(name, kind, CPU s per delivered sample) of each working stage, and samples per step.

    Samples delivered: what enters the first batch stage (or leaves the pipeline, unbatched).
    """
    rows = stats.stages
    at = next((i for i, s in enumerate(rows) if s.kind == "batch"), None)
    per_step: int | None = None
    if at is not None and at > 0:
        delivered = rows[at - 1].items  # samples that entered the batch
        if rows[at].items:
            per_step = max(1, round(delivered / rows[at].items))
    else:
        delivered = rows[-1].items if rows else 0
    if delivered <= 0:
        return [], per_step
    # a fused map group reports one row per map() call, each with its own worker seconds
    costs = [(s.name, s.kind, s.time_s / delivered) for s in rows if s.kind not in NOT_WORK and s.time_s > 0]
    return costs, per_step


def batch_size_of(rows: Sequence[StageEntry]) -> int | None:
    """The size written in a `batch(n)` stage's name, if any."""
    for s in rows:
        m = re.match(r"batch\((\d+)", s.name)
        if s.kind == "batch" and m:
            return int(m.group(1))
    return None


def consumer_steps_s(rec: Recording) -> float | None:
    """Steps per second the consumer runs when data is ready: 1 / mean(compute + sync) per step."""
    busy = [s.compute_s + s.sync_s for s in rec.steps if s.compute_s + s.sync_s > 0]
    if len(busy) < 3:
        return None
    return len(busy) / sum(busy)


def plan_from_stats(stats: PipelineStats, *, steps_s: float | None, target_samples_s: float | None,
                    usable_cores: float, reserved_cores: float = 1.0,
                    cores_per_node: float | None = None) -> CapacityPlan | None:
    """The plan for one pipeline's stats and the consumer's step rate (or an explicit target)."""
    costs, per_step = stage_costs(stats)
    if not costs:
        return None
    per_step = batch_size_of(stats.stages) or per_step or 1
    notes = []
    if target_samples_s is not None:
        why = "--target-rate"
    elif steps_s is not None:
        target_samples_s = steps_s * per_step
        why = f"the consumer's {steps_s:,.1f} steps/s x {per_step} samples"
    else:
        why = ""
        notes.append("no consumer step rate measured: the plan gives this machine's capacity")
    plan = capacity_plan(costs, target_samples_s=target_samples_s, target_from=why,
                         usable_cores=usable_cores, reserved_cores=reserved_cores,
                         cores_per_node=cores_per_node)
    return replace(plan, notes=notes)


def plan_from_recording(rec: Recording, *, target_samples_s: float | None = None, reserved_cores: float = 1.0,
                        cores_per_node: float | None = None) -> CapacityPlan | None:
    """The plan for a doctor recording: its busiest cpuwise.data pipeline, its consumer's step rate,
    the recorded machine's usable cores. None when the job reported no pipeline stats."""
    candidates = [p for p in rec.pipeline_stats if stage_costs(p)[0]]
    if not candidates:
        return None
    stats = max(candidates, key=lambda p: p.items_out)
    usable = float(rec.host.get("usable_cores") or rec.host.get("logical_cores") or 1)
    return plan_from_stats(stats, steps_s=consumer_steps_s(rec), target_samples_s=target_samples_s,
                           usable_cores=usable, reserved_cores=reserved_cores, cores_per_node=cores_per_node)


def plan_line(plan: CapacityPlan) -> str:
    """The line the doctor's report prints for a CPU-saturated input pipeline."""
    return f"cpuwise plan: {plan.summary()}. Details: `cpuwise plan report.json`."


# --- Ray processes -------------------------------------------------------------------------------
RAY_SYSTEM_TITLES = ("ray::DashboardAgent", "ray::RuntimeEnvAgent", "ray::IDLE_SPILL_WORKER",
                     "ray::IDLE_RESTORE_WORKER", "ray::SPILL_", "ray::RESTORE_")
RAY_SYSTEM_BINARIES = {"raylet", "gcs_server", "plasma_store", "ray-dashboard"}
RAY_SYSTEM_SCRIPTS = ("/ray/dashboard/", "/ray/_private/log_monitor.py", "/ray/autoscaler/",
                      "/ray/_private/runtime_env/", "/ray/util/client/server")


def ray_role(name: str, cmdline: Sequence[str]) -> str | None:
    """What a process is to Ray, from its name and command line (None: not Ray's).

    "ray-worker": a worker running a task or an actor (`ray::MapBatches(...)`: preprocessing);
    "ray-idle": a pooled worker waiting for a task (`ray::IDLE`);
    "ray-system": raylet, GCS, Ray's agents, monitors and its internal actors (`ray::_StatsActor`).
    Ray titles its workers with setproctitle, so `ray::...` shows in the name and in argv[0].
    """
    title = cmdline[0] if cmdline and cmdline[0].startswith("ray::") else name
    if title.startswith("ray::"):
        if title.strip() == "ray::IDLE":
            return "ray-idle"
        if title.startswith(RAY_SYSTEM_TITLES) or title.startswith("ray::_"):
            return "ray-system"
        return "ray-worker"
    exe = cmdline[0].rsplit("/", 1)[-1] if cmdline else ""
    if name in RAY_SYSTEM_BINARIES or exe in RAY_SYSTEM_BINARIES:
        return "ray-system"
    if any(part in arg for arg in cmdline[:3] for part in RAY_SYSTEM_SCRIPTS):
        return "ray-system"
    return None
