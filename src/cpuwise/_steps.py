"""Step summaries that stay bounded however many steps a job makes (the doctor side of the channel).

Each training loop (one process, one step source) becomes one `StepLane`: exact totals (count, sums
of data-wait / compute / sync, the steps that began an epoch), per-interval summaries (count, sums,
quantiles from a histogram with HIST_BINS_PER_OCTAVE bins per factor of 2, max) whose number stays at
most MAX_INTERVALS (past it, neighbours merge and the interval doubles), and a bounded sample of whole
steps for the plots: the first HEAD_STEPS (warm-up is judged on them), the last TAIL_STEPS received
and a uniform reservoir of RESERVOIR_STEPS of the rest.

    builder = LaneBuilder(pid, "dataloader", t0)
    builder.add(record)                  # a "steps" record from the channel (see cpuwise._channel)
    lane, sample = builder.lane(), builder.sample()

`summarise(steps)` makes the lanes of a list of whole steps (a hand-written recording, or a test's).
Standard library only; pure except for the builder's own state.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from typing import Any

from cpuwise import _channel as channel
from cpuwise._schema import StepInterval, StepLane, StepRecord

HEAD_STEPS = 64
TAIL_STEPS = 512
RESERVOIR_STEPS = 512
MAX_INTERVALS = 1000  # 0.25 s intervals cover 250 s; a 10-minute job ends with 600 of 0.5 s


def quantile(hist: dict[int, int], n: int, q: float, top: float) -> float:
    """The `q` quantile of `n` step times in histogram `hist` (bin -> count): the middle of its bin,
    never above `top` (the largest time seen)."""
    if n <= 0:
        return 0.0
    want, seen = q * n, 0
    for i in sorted(hist):
        seen += hist[i]
        if seen >= want:
            lo, hi = channel.bin_bounds(i)
            return min(top, (lo + hi) / 2)
    return top


class _Interval:
    __slots__ = ("n", "wait", "compute", "sync", "max", "hist")

    def __init__(self) -> None:
        self.n, self.wait, self.compute, self.sync, self.max = 0, 0.0, 0.0, 0.0, 0.0
        self.hist: dict[int, int] = {}

    def merge(self, n: int, wait: float, compute: float, sync: float, top: float,
              hist: Iterable[tuple[int, int]]) -> None:
        self.n += n
        self.wait += wait
        self.compute += compute
        self.sync += sync
        self.max = max(self.max, top)
        for i, count in hist:
            self.hist[i] = self.hist.get(i, 0) + count


class LaneBuilder:
    """Folds the "steps" records of one process and one step source into a StepLane and a sample."""

    def __init__(self, pid: int, source: str, t0: float, *, seed: int = 0) -> None:
        self.pid, self.source, self.t0 = pid, source, t0
        self.n = self.epoch_starts = 0
        self.wait = self.compute = self.sync = self.epoch_start_wait = self.max = self.collective = 0.0
        self.first_a: float | None = None
        self.last_end: float | None = None
        self.shift = 0  # intervals are BUCKET_S * 2**shift long
        self.intervals: dict[int, _Interval] = {}
        self.head: list[StepRecord] = []
        self.tail: deque[StepRecord] = deque(maxlen=TAIL_STEPS)
        self.reservoir: list[StepRecord] = []
        self._beyond_head = 0
        self._rng = random.Random(seed)

    def add(self, record: dict[str, Any]) -> None:
        """Fold one "steps" record (its groups and raw steps of this builder's source)."""
        for g in record.get("g") or []:
            if isinstance(g, list) and len(g) == 13 and g[0] == self.source:
                self.add_group(*g[1:])
        for r in record.get("raw") or []:
            if isinstance(r, list) and len(r) == 7 and r[0] == self.source:
                self.add_raw(int(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]), bool(r[6]))

    def add_group(self, bucket: int, n: int, wait: float, compute: float, sync: float, top: float,
                  firsts: int, first_wait: float, first_a: float, last_end: float,
                  hist: Iterable[tuple[int, int]], collective: float = 0.0) -> None:
        """Add the summary of `n` steps that started in BUCKET_S window `bucket` (perf_counter clock)."""
        self.n += int(n)
        self.collective += collective
        self.wait += wait
        self.compute += compute
        self.sync += sync
        self.max = max(self.max, top)
        self.epoch_starts += int(firsts)
        self.epoch_start_wait += first_wait
        self.first_a = first_a if self.first_a is None else min(self.first_a, first_a)
        self.last_end = last_end if self.last_end is None else max(self.last_end, last_end)
        key = int(bucket) >> self.shift
        iv = self.intervals.get(key)
        if iv is None:
            iv = self.intervals[key] = _Interval()
        iv.merge(int(n), wait, compute, sync, top, ((int(i), int(c)) for i, c in hist))
        if len(self.intervals) > MAX_INTERVALS:
            self._thin()

    def _thin(self) -> None:
        """Merge neighbouring intervals (twice as long from now on): memory stays bounded on long jobs."""
        self.shift += 1
        merged: dict[int, _Interval] = {}
        for key, iv in self.intervals.items():
            into = merged.get(key >> 1)
            if into is None:
                merged[key >> 1] = iv
            else:
                into.merge(iv.n, iv.wait, iv.compute, iv.sync, iv.max, iv.hist.items())
        self.intervals = merged

    def add_raw(self, index: int, a: float, wait: float, compute: float, sync: float, first: bool) -> None:
        """Offer one whole step to the sample (head, tail and reservoir)."""
        step = StepRecord(index=index, t_start=round(a - self.t0, 6), data_wait_s=wait, compute_s=compute,
                          sync_s=sync, pid=self.pid, epoch_start=first)
        if index < HEAD_STEPS:
            self.head.append(step)
            return
        self.tail.append(step)
        self._beyond_head += 1
        if len(self.reservoir) < RESERVOIR_STEPS:
            self.reservoir.append(step)
        else:
            j = self._rng.randrange(self._beyond_head)
            if j < RESERVOIR_STEPS:
                self.reservoir[j] = step

    def sample(self) -> list[StepRecord]:
        """The whole steps kept, by index (head, reservoir and tail, each step once)."""
        by_index = {s.index: s for s in (*self.head, *self.reservoir, *self.tail)}
        return [by_index[i] for i in sorted(by_index)]

    def lane(self) -> StepLane:
        """The lane: exact totals and the per-interval summaries."""
        width = channel.BUCKET_S * (1 << self.shift)
        intervals = [
            StepInterval(t=round(key * width - self.t0, 6), dt=width, n=iv.n, data_wait_s=iv.wait,
                         compute_s=iv.compute, sync_s=iv.sync,
                         p50_s=quantile(iv.hist, iv.n, 0.50, iv.max),
                         p90_s=quantile(iv.hist, iv.n, 0.90, iv.max),
                         p99_s=quantile(iv.hist, iv.n, 0.99, iv.max), max_s=iv.max)
            for key, iv in sorted(self.intervals.items())
        ]
        return StepLane(pid=self.pid, source=self.source, n=self.n, data_wait_s=self.wait,
                        compute_s=self.compute, sync_s=self.sync, collective_s=self.collective,
                        epoch_starts=self.epoch_starts,
                        epoch_start_wait_s=self.epoch_start_wait,
                        first_t=round((self.first_a or self.t0) - self.t0, 6),
                        end_t=round((self.last_end or self.t0) - self.t0, 6), max_s=self.max,
                        intervals=intervals)


def summarise(steps: Iterable[StepRecord], source: str = "steps") -> list[StepLane]:
    """The lanes (one per pid) of whole steps, as the channel would have summarised them: a hand-written
    recording lists every step, so its totals are exact."""
    builders: dict[int | None, LaneBuilder] = {}
    for s in sorted(steps, key=lambda s: (s.t_start, s.index)):
        b = builders.get(s.pid)
        if b is None:
            b = builders[s.pid] = LaneBuilder(s.pid if s.pid is not None else 0, source, 0.0)
        total = s.total_s
        bucket = int(s.t_start / channel.BUCKET_S) if s.t_start >= 0 else -1
        b.add_group(bucket, 1, s.data_wait_s, s.compute_s, s.sync_s, total, int(s.epoch_start),
                    s.data_wait_s if s.epoch_start else 0.0, s.t_start, s.t_start + total,
                    [(channel.bin_of(total), 1)])
    lanes = []
    for b in builders.values():
        lane = b.lane()
        if lane.pid == 0:
            lane.pid = None
        lanes.append(lane)
    return lanes
