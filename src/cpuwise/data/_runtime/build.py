"""Turn a chain of specs into live stages: one set per iterator; pools and cache records are shared.

The loop knows no stage kind. Each spec builds its own stage from the one before it; a spec may
fuse the specs right after it into its stage (maps), and may give the stages upstream of it another
epoch clock (repeat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cpuwise.data._runtime.budget import Budget
from cpuwise.data.stages._base import BuildContext, EpochClock, Spec, Stage


@dataclass
class Built:
    top: Stage  # the last stage: the iterator pulls from it
    clock: EpochClock  # the root clock: the iterator sets the epoch on it


def fingerprint(chain: Sequence[Spec]) -> list[str]:
    """What a state dict records of its pipeline, to refuse a state saved from another one."""
    return [s.fingerprint() for s in chain]


def fuse(chain: Sequence[Spec]) -> list[list[Spec]]:
    """The chain as the stages it builds into: a spec joins the group before it when the group's
    first spec fuses it."""
    groups: list[list[Spec]] = []
    for spec in chain:
        if groups and groups[-1][0].fuses(spec):
            groups[-1].append(spec)
        else:
            groups.append([spec])
    return groups


def build(chain: Sequence[Spec], budget: Budget) -> Built:
    """Live stages for one iterator over `chain` (which starts with a source)."""
    groups = fuse(chain)
    root = EpochClock()
    clocks = [root] * len(groups)
    clock = root
    for i in range(len(groups) - 1, -1, -1):  # a repeat() changes the clock of what is upstream of it
        clock = groups[i][0].epoch_clock(clock)
        clocks[i] = clock
    ctx = BuildContext(cpu_budget=budget.cpu, groups=groups)
    for i, group in enumerate(groups):
        ctx.index = i
        group[0].prepare(ctx)
    stage: Stage | None = None
    for i, ck in enumerate(clocks):
        ctx.index, ctx.epoch = i, ck
        if i in ctx.wraps:
            stage = ctx.wraps[i](stage)
        stage = groups[i][0].build(stage, ctx)
    if len(groups) in ctx.wraps:
        stage = ctx.wraps[len(groups)](stage)
    assert stage is not None, "a chain has at least its source"
    return Built(top=stage, clock=root)
