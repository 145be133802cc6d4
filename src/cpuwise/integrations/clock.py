"""Batch-start / batch-end hooks -> step deliveries on the channel (what every framework callback does)."""

from __future__ import annotations

import itertools
import time

from cpuwise import _channel as channel

_streams = itertools.count(2_000_000)  # apart from the DataLoader patch's and cpuwise.watch's stream ids


class StepClock:
    """One framework's training loop as a stream of steps.

    A step runs from the start of one batch to the start of the next; its data-wait is the time from
    the end of the previous batch to the start of this one (the framework fetching the batch), so the
    first step of an epoch waits from the epoch's start.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.stream = next(_streams)
        self.t_end: float | None = None

    def epoch_start(self) -> None:
        self.stream = next(_streams)
        self.t_end = time.perf_counter()

    def batch_start(self) -> None:
        t = time.perf_counter()
        start = self.t_end if self.t_end is not None else t
        channel.note_next(start, t, source=self.source, stream=self.stream)

    def batch_end(self) -> None:
        self.t_end = time.perf_counter()

    def epoch_end(self) -> None:
        """Close the epoch's last step at the end of its last batch."""
        if self.t_end is not None:
            channel.note_next(self.t_end, self.t_end, source=self.source, stream=self.stream, end=True)
        self.t_end = None
