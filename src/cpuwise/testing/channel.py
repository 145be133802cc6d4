"""What a doctor would read from a channel file: for tests of code that reports to `cpuwise doctor`
(cpuwise.data iterators, adapters, framework callbacks) without depending on the wire format.

    channel.set_path(str(path)); ...; channel.set_path(None)
    lanes = step_lanes(path)            # one per process and step source
    assert lanes[0].n == 3 and lanes[0].epoch_starts == 1
"""

from __future__ import annotations

from pathlib import Path

from cpuwise._schema import StepLane
from cpuwise.monitor.events import ChannelReader, JobState


def job_state(path: str | Path) -> JobState:
    """Everything the channel file at `path` says, folded as the doctor folds it."""
    state = JobState()
    state.ingest(ChannelReader(path).read_new())
    return state


def step_lanes(path: str | Path, source: str | None = None) -> list[StepLane]:
    """The step lanes of every process that reported steps (of `source` only, when given)."""
    builders = job_state(path).steps.builders
    return [b.lane() for (_, src), b in sorted(builders.items()) if source is None or src == source]


def step_sources(path: str | Path) -> set[str]:
    """The step sources that reported (e.g. {"cpuwise.data"}: nothing else repeated its steps)."""
    return {src for _, src in job_state(path).steps.builders}
