"""Sample the job every `interval` seconds in a background thread and keep what the job reports.

The recorder only collects: it owns the samplers (backends), reads the channel file, and at the end
fills a Recording. Any sampler error is noted once and sampling goes on; a process that exits
between two samples is simply absent from the next one. Sample memory stays bounded on long jobs: past
`max_ticks` samples, every other sample is dropped and the interval doubles (noted in the recording).
Steps arrive summarised per process and interval and are merged into bounded lanes (`steps.py`), so
nothing here grows with the number of steps either.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

from cpuwise._schema import GpuSample, PipelineStats, ProcessSample, Recording, SystemSample
from cpuwise.errors import ConfigError
from cpuwise.monitor.backends import GpuBackend, ProcessBackend, SystemBackend
from cpuwise.monitor.events import ChannelReader, JobState

# One tick reads a few small /proc files per process (~0.1 ms of CPU each): below 10 ms between ticks the
# sampler itself would take a noticeable share of a core, and the CPU ratios would cover too few jiffies
# (USER_HZ = 100) to mean anything. Above a minute a job shorter than a few minutes gets fewer samples
# than the rules need (3).
MIN_INTERVAL_S = 0.01
MAX_INTERVAL_S = 60.0
# The doctor's CPU budget (issue 9): under 1 % of one core per 10 sampled processes. The recorder aims at
# 0.85 % (its pace reacts to costs after they happened, so it keeps that margin). Regular ticks come
# first, up to REGULAR_SHARE of it (past that the recorder samples less often than `interval`); private-
# memory reads get what the ticks leave.
SAMPLER_BUDGET_PER_10 = 0.0085
REGULAR_SHARE = 0.7


def sampler_budget(processes: int) -> float:
    """The fraction of one core the doctor may use to sample `processes` processes."""
    return SAMPLER_BUDGET_PER_10 * max(1.0, processes / 10.0)


def check_interval(interval: float, name: str = "interval") -> float:
    """`interval` if the sampler can keep it (a finite number of seconds in [MIN, MAX]), else ConfigError."""
    if not isinstance(interval, int | float) or not math.isfinite(interval) or not (
            MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S):
        raise ConfigError(f"{name} must be a number of seconds between {MIN_INTERVAL_S:g} and "
                          f"{MAX_INTERVAL_S:g}, got {interval!r}. The default, 0.1, suits most jobs.")
    return float(interval)


class Recorder:
    """Collects samples and channel records; `fill(rec)` writes them into a Recording."""

    def __init__(self, processes: ProcessBackend, system: SystemBackend, gpu: GpuBackend, *,
                 interval: float = 0.1, channel_path: str | Path | None = None,
                 t0: float | None = None, max_ticks: int = 3000) -> None:
        self.processes_backend, self.system_backend, self.gpu_backend = processes, system, gpu
        self.interval = check_interval(interval)
        self.max_ticks = max(4, max_ticks)
        self._ticks: list[float] = []
        self.t0 = time.perf_counter() if t0 is None else t0
        self.state = JobState(self.t0)
        self.system: list[SystemSample] = []
        self.processes: list[ProcessSample] = []
        self.gpus: list[GpuSample] = []
        self.notes: list[str] = []
        self._tree_cpu: list[tuple[float, float]] = []  # (t, summed CPU % of the tree) per tick
        self._reader = ChannelReader(channel_path) if channel_path else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._errors: set[str] = set()
        self.sampler_cpu_s = 0.0  # CPU time of the sampling thread so far (its own cost)
        self._tick_cost: float | None = None  # CPU of one regular tick (smoothed), for the pace
        self._private_seen = 0.0

    def now(self) -> float:
        """Seconds since the recording started."""
        return time.perf_counter() - self.t0

    def read_channel(self) -> None:
        """Fold what the job wrote to the channel since the last read into `state`."""
        if self._reader is not None:
            with self._lock:
                self.state.ingest(self._reader.read_new())

    def tick(self) -> None:
        """Take one sample of everything (the thread calls this; tests may call it directly)."""
        t = round(self.now(), 4)
        self.read_channel()
        for what, fn in (("process", self._sample_processes), ("system", self._sample_system),
                         ("gpu", self._sample_gpu)):
            try:
                fn(t)
            except Exception as exc:  # a sampler bug must never end the job's recording
                msg = f"{what} sampler error: {type(exc).__name__}: {exc}"
                if msg not in self._errors:
                    self._errors.add(msg)
                    self.notes.append(msg)
        self._ticks.append(t)
        if len(self._ticks) > self.max_ticks:
            self._thin()

    def _thin(self) -> None:
        """Keep every other tick's samples and double the interval (bounded memory on long jobs)."""
        keep = set(self._ticks[::2])
        self._ticks = self._ticks[::2]
        self.processes = [s for s in self.processes if s.t in keep]
        self.system = [s for s in self.system if s.t in keep]
        self.gpus = [s for s in self.gpus if s.t in keep]
        self._tree_cpu = [c for c in self._tree_cpu if c[0] in keep]
        self.interval *= 2
        note = (f"sampling interval raised to {self.interval:g} s to bound memory (at most "
                f"{self.max_ticks} samples kept)")
        self.notes = [n for n in self.notes if not n.startswith("sampling interval raised")] + [note]

    def _sample_processes(self, t: float) -> None:
        samples = self.processes_backend.sample(t, dict(self.state.roles))
        self.processes.extend(samples)
        self._tree_cpu.append((t, sum(s.cpu_percent for s in samples)))

    def _sample_system(self, t: float) -> None:
        s = self.system_backend.sample(t)
        if s is not None:
            self.system.append(s)

    def _sample_gpu(self, t: float) -> None:
        if self.gpu_backend.status.available:
            self.gpus.extend(self.gpu_backend.sample(t, self.processes_backend.pids()))

    def tree_cpu_percent(self, window_s: float) -> float | None:
        """Mean summed CPU % of the job's tree over the last `window_s` seconds (None: no samples)."""
        if not self._tree_cpu:
            return None
        cutoff = self._tree_cpu[-1][0] - window_s
        vals = [c for t, c in self._tree_cpu if t >= cutoff]
        return sum(vals) / len(vals) if vals else None

    def last_progress(self) -> float | None:
        """Seconds since start of the latest step delivery, or None before the first one."""
        lp = self.state.last_progress
        return None if lp is None else lp - self.t0

    def _pace(self, tick_cpu_s: float) -> float:
        """Seconds to the next tick: `interval`, longer when a tick costs more than the budget allows;
        gives private-memory reads what the ticks leave of the budget."""
        private = getattr(self.processes_backend, "private_cpu_s", 0.0)
        regular = max(0.0, tick_cpu_s - (private - self._private_seen))
        self._private_seen = private
        self._tick_cost = regular if self._tick_cost is None else 0.8 * self._tick_cost + 0.2 * regular
        budget = sampler_budget(len(self.processes_backend.pids()))
        step = max(self.interval, self._tick_cost / (REGULAR_SHARE * budget))
        set_private = getattr(self.processes_backend, "private_budget", None)
        if set_private is not None:
            set_private(max(0.0, budget - self._tick_cost / step))
        return step

    def _run(self) -> None:
        next_t = time.perf_counter()
        c0 = time.thread_time()
        last_cpu = c0
        while not self._stop.is_set():
            self.tick()
            now_cpu = time.thread_time()
            self.sampler_cpu_s = now_cpu - c0
            next_t += self._pace(now_cpu - last_cpu)  # the tick and the wake-up before it
            last_cpu = now_cpu
            delay = next_t - time.perf_counter()
            if delay < 0:  # fell behind (a slow tick): skip ahead rather than burst
                next_t = time.perf_counter()
                delay = 0.0
            self._stop.wait(delay)

    def start(self) -> Recorder:
        """Start sampling every `interval` seconds in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="cpuwise-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling, read the channel a last time and close the GPU backend."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.read_channel()
        self.gpu_backend.close()

    def fill(self, rec: Recording) -> Recording:
        """Move everything collected into `rec` (steps, job facts, samples, notes)."""
        with self._lock:
            st = self.state
            rec.system, rec.processes, rec.gpus = self.system, self.processes, self.gpus
            for p in rec.processes:  # what a process is (a rank, a worker) is known once it says so
                role = st.roles.get(p.pid)
                if role is not None and p.role != role and p.role != "main":
                    p.role = role
            rec.interval_s = self.interval
            rec.step_lanes, rec.steps = st.steps.lanes()
            info = dict(st.job_info)
            info["step_source"] = st.steps.source() or info.get("step_source")
            rec.job_info.update(info)
            rec.pipeline_stats = [PipelineStats.from_dict(p) for p in st.pipeline_stats.values()]
            rec.gpu = self.gpu_backend.status
            rec.notes.extend(self.notes)
            rec.doctor["sampler_cpu_s"] = round(self.sampler_cpu_s, 4)
        return rec
