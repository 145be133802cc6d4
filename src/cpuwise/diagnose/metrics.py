"""Numbers derived from a Recording once, so every rule and renderer reads the same step split and CPU.

Pure: `measure(rec)` only reads the recording. Averages are taken over the steady-state window (from
the first step after warm-up to the end of the last step) when there are steps, else over the run.
Measure once per report and pass the Metrics on: `diagnose(rec, m)`, `write_reports(rec, findings,
out, m)`, `render_summary(rec, findings, m)`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from cpuwise._schema import GpuStatus, ProcessSample, Recording, StepLane, StepRecord
from cpuwise._steps import summarise
from cpuwise.diagnose import thresholds as th


@dataclass
class StepStats:
    """The split of the measured steps (warm-up excluded) into data-wait / compute / sync."""

    n: int
    n_total: int
    skipped: int
    mean_total_s: float
    mean_wait_s: float
    mean_compute_s: float
    mean_sync_s: float
    mean_collective_s: float = 0.0  # the part of sync spent in collectives (waiting for the other ranks)

    def share(self, part_s: float) -> float:
        return part_s / self.mean_total_s if self.mean_total_s > 0 else 0.0

    @property
    def wait_share(self) -> float:
        return self.share(self.mean_wait_s)

    @property
    def compute_share(self) -> float:
        return self.share(self.mean_compute_s)

    @property
    def sync_share(self) -> float:
        return self.share(self.mean_sync_s)

    @property
    def device_sync_share(self) -> float:
        """Sync on the device (.item(), .cpu(), synchronize), without the collectives."""
        return self.share(max(0.0, self.mean_sync_s - self.mean_collective_s))


@dataclass
class RankView:
    """One rank of a distributed job: its steps, its data workers, its GPU, and how it ended."""

    rank: int
    pid: int
    node: str
    launcher: str
    lane: StepLane | None
    steps: StepStats | None
    cpu_cores: float  # the rank process's own mean cores (its main thread and pools)
    workers_configured: int | None  # num_workers of its DataLoader(s)
    workers_seen: int  # its worker processes alive at once (most)
    worker_cpu_each: float | None
    gpu: int | None  # the GPU index it uses (NVML process list, else LOCAL_RANK)
    ending: str  # "exited", "crashed: <last line>", "ended without a Python exit (a signal?)", "running"


@dataclass
class Metrics:
    """Everything the rules compare against thresholds, and the samples the renderers plot."""

    usable_cores: int
    window: tuple[float, float]
    steps: StepStats | None
    lanes: list[StepLane]  # every step, summarised per training loop (see lanes_of)
    n_system: int
    role_cpu_cores: dict[str, float]  # mean cores busy per role ("main", "worker", "child")
    job_cpu_cores: float
    system_busy_cores: float | None
    cpu_busy_fraction: float  # of the usable cores, max(job, whole machine)
    workers_seen: int  # most worker processes alive at once
    workers_configured: int | None  # from job_info.dataloaders
    worker_cpu_each: float | None  # mean cores per worker process
    iowait_percent: float | None
    disk_sleep_share: float
    read_rate_bps: float
    involuntary_cs_per_core_s: float
    runqueue_mean: float | None
    gpu_util: float | None
    gpu_sm_activity: float | None
    gpu_mem_fraction: float | None
    # The recording these were measured on, after `sanitize` (its samples are what the reports plot).
    sanitized: Recording = field(repr=False, compare=False)
    others_cores: float = 0.0  # cores busy with processes outside the job (the machine minus the job)
    worker_sleep_share: float = 0.0  # share of data-worker samples sleeping (state S): waiting, not computing
    job_runnable_share: float = 0.0  # share of the job's samples (trainers, workers) running or runnable (R)
    trainer_sleep_share: float = 0.0  # share of the training processes' samples asleep (state S)
    ranks: list[RankView] = field(default_factory=list)
    # Data-wait of the epochs' first steps beyond the first epoch, in loaders that start fresh workers
    # every epoch (num_workers > 0, persistent_workers=False): its share of all step time, and how many.
    restart_wait_share: float = 0.0
    restarts: int = 0
    mem_series: dict[int, list[tuple[float, int]]] = field(default_factory=dict)  # worker pid -> bytes


def usable_cores(rec: Recording) -> int:
    """The cores the job may use (host facts: affinity and cgroup quota), else the cores sampled."""
    n = rec.host.get("usable_cores") if isinstance(rec.host, dict) else None
    if isinstance(n, int | float) and n >= 1:
        return int(n)
    if rec.system:
        return max(1, len(rec.system[0].cpu_percent_per_core))
    return 1


def lanes_of(rec: Recording) -> list[StepLane]:
    """The recording's step lanes; a recording with whole steps but no lanes (hand-written) lists every
    step, so its lanes are summarised from them."""
    return rec.step_lanes or summarise(rec.steps)


def _warmup_steps(rec: Recording, lane: StepLane, warmup: int) -> list[StepRecord]:
    """The first `warmup` steps of `lane` (the sample always keeps the first steps of every lane)."""
    return sorted((s for s in rec.steps if s.pid == lane.pid and s.index < warmup), key=lambda s: s.index)


def lane_stats(rec: Recording, lanes: list[StepLane], warmup: int | None = None) -> StepStats | None:
    """Mean split of every step of `lanes` after each lane's first `warmup` (default WARMUP_STEPS; kept
    when dropping them would leave fewer than MIN_STEPS). Exact: from the lanes' totals."""
    lanes = [lane for lane in lanes if lane.n > 0]
    if not lanes:
        return None
    warmup = th.WARMUP_STEPS if warmup is None else warmup
    n_total = sum(lane.n for lane in lanes)
    skip_each = warmup if n_total - warmup * len(lanes) >= th.MIN_STEPS else 0
    n = wait = comp = sync = coll = 0.0
    skipped = 0
    for lane in lanes:
        head = _warmup_steps(rec, lane, skip_each) if skip_each else []
        skipped += len(head)
        n += lane.n - len(head)
        wait += lane.data_wait_s - sum(s.data_wait_s for s in head)
        comp += lane.compute_s - sum(s.compute_s for s in head)
        sync += lane.sync_s - sum(s.sync_s for s in head)
        coll += lane.collective_s
    if n <= 0:
        return None
    wait, comp, sync = max(0.0, wait) / n, max(0.0, comp) / n, max(0.0, sync) / n
    return StepStats(int(n), n_total, skipped, wait + comp + sync, wait, comp, sync,
                     min(sync, max(0.0, coll) / n))


def step_stats(steps: list[StepRecord], warmup: int | None = None) -> StepStats | None:
    """Mean split of whole steps after `warmup` (see lane_stats), e.g. for a list built by hand."""
    rec = Recording(command=[], started_at="", duration_s=0.0, interval_s=0.1, end_reason="", exit_code=None,
                    host={}, gpu=GpuStatus(available=False), steps=list(steps))
    return lane_stats(rec, lanes_of(rec), warmup)


def _window(rec: Recording, lanes: list[StepLane]) -> tuple[float, float]:
    """The steady state: first step after warm-up to the end of the last step, else the whole run."""
    lanes = [lane for lane in lanes if lane.n > 0]
    if lanes:
        stats = lane_stats(rec, lanes)
        starts = []
        for lane in lanes:
            head = _warmup_steps(rec, lane, th.WARMUP_STEPS + 1)
            skip = th.WARMUP_STEPS if stats is not None and stats.skipped else 0
            starts.append(head[skip].t_start if len(head) > skip else lane.first_t)
        t0, t1 = min(starts), max(lane.end_t for lane in lanes)
        inside = [s for s in rec.system if t0 <= s.t <= t1]
        if len(inside) >= th.MIN_SYSTEM_SAMPLES:
            return (t0, t1)
    return (0.0, max(rec.duration_s, max((s.t for s in rec.system), default=0.0)))


def _per_pid(samples: list[ProcessSample]) -> dict[int, list[ProcessSample]]:
    by_pid: dict[int, list[ProcessSample]] = defaultdict(list)
    for p in samples:
        by_pid[p.pid].append(p)
    for lst in by_pid.values():
        lst.sort(key=lambda p: p.t)
    return by_pid


def _rate(series: list[tuple[float, float]]) -> float:
    """(last - first) / elapsed of a cumulative counter; 0 for fewer than two points."""
    if len(series) < 2 or series[-1][0] <= series[0][0]:
        return 0.0
    return max(0.0, series[-1][1] - series[0][1]) / (series[-1][0] - series[0][0])


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return 0.0
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def sanitize(rec: Recording) -> Recording:
    """A copy without the samples whose CPU ratios cannot be trusted.

    A CPU percentage is a ratio over the time since the previous sample; when the sampler falls behind
    and two samples land a few ms apart, that ratio reads 0 % or thousands of percent. Samples closer
    than MIN_SAMPLE_GAP x interval to their predecessor are dropped, and a process never reads more
    than every core of the machine. The copy shares every other field with `rec`.
    """
    gap = th.MIN_SAMPLE_GAP * rec.interval_s
    system, last = [], None
    for smp in sorted(rec.system, key=lambda x: x.t):
        if last is None or smp.t - last >= gap:
            system.append(smp)
            last = smp.t
    ceiling = 100.0 * max(
        usable_cores(rec), max((len(x.cpu_percent_per_core) for x in rec.system), default=1)
    )
    procs = []
    for lst in _per_pid(rec.processes).values():
        prev = None
        for p in lst:
            if prev is None or p.t - prev >= gap:
                procs.append(p if p.cpu_percent <= ceiling else replace(p, cpu_percent=ceiling))
                prev = p.t
    procs.sort(key=lambda p: (p.t, p.pid))
    return replace(rec, system=system, processes=procs)


def final_roles(rec: Recording) -> dict[int, str]:
    """Each process's role as last sampled (a rank or a worker says what it is only once it starts)."""
    out: dict[int, str] = {}
    for p in sorted(rec.processes, key=lambda p: p.t):
        out[p.pid] = p.role
    return out


def ranks_of(rec: Recording) -> dict[int, dict[str, object]]:
    """pid -> the rank facts the job reported (rank, world_size, local_rank, launcher, ...)."""
    out = {}
    for pid, facts in job_dict(rec, "ranks").items():
        if isinstance(facts, dict) and isinstance(facts.get("rank"), int | str):
            try:
                out[int(pid)] = {**facts, "rank": int(facts["rank"])}
            except (TypeError, ValueError):
                continue
    return out


def measure(rec: Recording) -> Metrics:
    """Derive the metrics the rules use from a recording (after `sanitize`)."""
    rec = sanitize(rec)
    roles_now = final_roles(rec)
    rec = replace(rec, processes=[p if p.role == roles_now[p.pid] else replace(p, role=roles_now[p.pid])
                                  for p in rec.processes])
    cores = usable_cores(rec)
    lanes = lanes_of(rec)
    rank_of = {pid: int(f["rank"]) for pid, f in ranks_of(rec).items()}  # type: ignore[call-overload]
    if rank_of:
        lanes = [lane if lane.rank is not None or lane.pid not in rank_of
                 else replace(lane, rank=rank_of[lane.pid]) for lane in lanes]
    t0, t1 = _window(rec, lanes)
    system = [s for s in rec.system if t0 <= s.t <= t1] or rec.system
    procs = [p for p in rec.processes if t0 <= p.t <= t1] or rec.processes
    by_pid = _per_pid(procs)

    # CPU per role: sum over processes at each sample time, then the mean over sample times. The first
    # sample of each process reads 0 % (psutil has no previous reading), so it is left out.
    first_t = {pid: lst[0].t for pid, lst in by_pid.items()}
    times = sorted({p.t for p in procs})
    per_t: dict[float, dict[str, float]] = {t: defaultdict(float) for t in times}
    for p in procs:
        if p.t != first_t[p.pid] or len(by_pid[p.pid]) == 1:
            per_t[p.t][p.role] += p.cpu_percent / 100.0
    roles = sorted({p.role for p in procs})
    role_cpu = {r: sum(per_t[t][r] for t in times) / len(times) for r in roles} if times else {}
    job_cpu = sum(role_cpu.values())

    sys_busy = _mean([sum(s.cpu_percent_per_core) / 100.0 for s in system])
    busy = min(1.0, max(job_cpu / cores, (sys_busy or 0.0) / cores))
    if not lanes and times:
        # No steps to bound the steady state: the median sample ignores start-up and shut-down.
        job_med = _median([sum(per_t[t].values()) for t in times])
        sys_med = _median([sum(s.cpu_percent_per_core) / 100.0 for s in system]) if system else 0.0
        busy = min(1.0, max(job_med, sys_med) / cores)

    workers = {pid: lst for pid, lst in by_pid.items() if lst[0].role == "worker"}
    alive: dict[float, int] = defaultdict(int)
    for lst in workers.values():
        for p in lst:
            alive[p.t] += 1
    worker_vals = [p.cpu_percent / 100.0 for lst in workers.values() for p in lst[1:]]
    configured = configured_workers(rec)
    sleep_pool = [p for lst in workers.values() for p in lst] or procs
    disk_sleep = sum(p.status == "disk-sleep" for p in sleep_pool) / len(sleep_pool) if sleep_pool else 0.0
    worker_samples = [p for lst in workers.values() for p in lst]
    sleeping = (sum(p.status == "sleeping" for p in worker_samples) / len(worker_samples)
                if worker_samples else 0.0)

    read_rate = sum(
        _rate([(p.t, float(p.read_bytes)) for p in lst if p.read_bytes is not None])
        for lst in by_pid.values()
    )
    inv_rate = sum(_rate([(p.t, float(p.ctx_involuntary)) for p in lst]) for lst in by_pid.values())
    runq = [float(s.procs_running) for s in system if s.procs_running is not None]
    iowait = [s.iowait_percent for s in system if s.iowait_percent is not None]

    gpus = [g for g in rec.gpus if t0 <= g.t <= t1] or rec.gpus
    mem_frac = [
        g.mem_used_bytes / g.mem_total_bytes
        for g in gpus
        if g.mem_used_bytes is not None and g.mem_total_bytes
    ]
    # USS is sampled only now and then (it is expensive): use it for a pid only on the samples that
    # carry it, so one series never mixes USS and RSS (which would fake growth or shrinkage). Where the
    # sampler read private memory at all, RSS is no fallback: a forked worker's RSS climbs as it touches
    # the parent's pages (imports), which is not growth, and copy-on-read does not show in it. Each
    # worker's first MEM_WARMUP_S are its start-up, not growth.
    mem_series = {}
    workers_ = _per_pid([p for p in rec.processes if p.role == "worker"])
    private = any(p.uss_bytes is not None for lst in workers_.values() for p in lst)
    for pid, lst in workers_.items():
        born = lst[0].t
        settled = [p for p in lst if p.t - born >= th.MEM_WARMUP_S]
        mem_series[pid] = ([(p.t, p.uss_bytes) for p in settled if p.uss_bytes is not None] if private
                           else [(p.t, p.rss_bytes) for p in settled])
    return Metrics(
        usable_cores=cores,
        window=(t0, t1),
        steps=lane_stats(rec, lanes),
        lanes=lanes,
        n_system=len(rec.system),
        role_cpu_cores=role_cpu,
        job_cpu_cores=job_cpu,
        system_busy_cores=sys_busy,
        cpu_busy_fraction=busy,
        workers_seen=max(alive.values(), default=0),
        workers_configured=sum(configured.values()) if configured else None,
        worker_cpu_each=_mean(worker_vals),
        iowait_percent=_mean([float(v) for v in iowait]),
        disk_sleep_share=disk_sleep,
        read_rate_bps=read_rate,
        involuntary_cs_per_core_s=inv_rate / cores,
        runqueue_mean=_mean(runq),
        gpu_util=_mean([g.util_percent for g in gpus if g.util_percent is not None]),
        gpu_sm_activity=_mean([g.sm_activity_percent for g in gpus if g.sm_activity_percent is not None]),
        gpu_mem_fraction=max(mem_frac) if mem_frac else None,
        mem_series=mem_series,
        others_cores=max(0.0, (sys_busy or 0.0) - job_cpu) if sys_busy is not None else 0.0,
        worker_sleep_share=sleeping,
        job_runnable_share=_runnable(procs),
        trainer_sleep_share=_asleep([p for p in procs if p.role == ("rank" if ranks_of(rec) else "main")]),
        ranks=_rank_views(rec, lanes, by_pid, configured),
        sanitized=rec,
        **_restarts(rec, lanes),
    )


def _runnable(procs: list[ProcessSample]) -> float:
    """Share of the samples of the job's working processes (main, ranks, workers) in state R: on a CPU
    or waiting in the run queue for one (a starved process is R, one waiting on reads is S)."""
    working = [p for p in procs if p.role in ("main", "rank", "worker")]
    return sum(p.status == "running" for p in working) / len(working) if working else 0.0


def _asleep(samples: list[ProcessSample]) -> float:
    return sum(p.status == "sleeping" for p in samples) / len(samples) if samples else 0.0


def whole(value: object) -> int | None:
    """A job-reported whole number, or None for anything else (job reports may be malformed)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def job_list(rec: Recording, key: str) -> list[Any]:
    """A job-reported list of job_info (empty when missing or malformed)."""
    value = rec.job_info.get(key)
    return value if isinstance(value, list) else []


def job_dict(rec: Recording, key: str) -> dict[str, Any]:
    """A job-reported mapping of job_info (empty when missing or malformed)."""
    value = rec.job_info.get(key)
    return value if isinstance(value, dict) else {}


def _restarts(rec: Recording, lanes: list[StepLane]) -> dict[str, Any]:
    """The wait for fresh workers at each epoch after the first (see Metrics.restart_wait_share)."""
    fresh = {d.get("pid") for d in job_list(rec, "dataloaders") if isinstance(d, dict)
             and (whole(d.get("num_workers")) or 0) > 0 and not d.get("persistent_workers")}
    total = sum(lane.total_s for lane in lanes)
    wait, n = 0.0, 0
    for lane in lanes:
        if lane.pid not in fresh or lane.epoch_starts < 2:
            continue
        first = _warmup_steps(rec, lane, 1)
        first_wait = first[0].data_wait_s if first and first[0].epoch_start else 0.0
        wait += max(0.0, lane.epoch_start_wait_s - first_wait)
        n += lane.epoch_starts - 1
    return {"restart_wait_share": wait / total if total > 0 else 0.0, "restarts": n}


def configured_workers(rec: Recording) -> dict[int | None, int]:
    """pid of the process that built DataLoaders -> the most workers one of them has (job-reported)."""
    out: dict[int | None, int] = {}
    for d in job_list(rec, "dataloaders"):
        n = whole(d.get("num_workers")) if isinstance(d, dict) else None
        if n is not None:
            pid = whole(d.get("pid"))
            out[pid] = max(out.get(pid, 0), n)
    return out


def _ending(rec: Recording, pid: int, last_seen: float | None) -> str:
    """How one process of the job ended, from what it reported and when it was last seen."""
    exc = job_dict(rec, "exceptions").get(str(pid))
    if exc:
        last = next((ln.strip() for ln in reversed(str(exc).splitlines()) if ln.strip()), "an exception")
        return f"crashed: {last}"
    if pid in job_list(rec, "exited"):
        return "exited"
    if last_seen is not None and last_seen < rec.duration_s - max(1.0, 3 * rec.interval_s):
        return "ended without a Python exit (a signal?)"
    return "running at the end"


def _rank_views(rec: Recording, lanes: list[StepLane], by_pid: dict[int, list[ProcessSample]],
                configured: dict[int | None, int]) -> list[RankView]:
    facts = ranks_of(rec)
    if not facts:
        return []
    everyone = _per_pid(rec.processes)
    gpu_of = {int(pid): g.index for g in rec.gpus for pid in g.process_mem_bytes if pid.isdigit()}
    views = []
    for pid, f in sorted(facts.items(), key=lambda kv: kv[1]["rank"]):  # type: ignore[arg-type, return-value]
        lane = next((lane for lane in lanes if lane.pid == pid), None)
        kids = {k: lst for k, lst in by_pid.items() if lst[0].role == "worker" and lst[0].ppid == pid}
        alive: dict[float, int] = defaultdict(int)
        for lst in kids.values():
            for p in lst:
                alive[p.t] += 1
        vals = [p.cpu_percent / 100.0 for lst in kids.values() for p in lst[1:]]
        own = [p.cpu_percent / 100.0 for p in by_pid.get(pid, [])[1:]]
        local = f.get("local_rank")
        gpu = gpu_of.get(pid)
        if gpu is None and rec.gpus and isinstance(local, int | str) and str(local).isdigit():
            gpu = int(local)
        seen = everyone.get(pid)
        views.append(RankView(
            rank=int(f["rank"]), pid=pid, node=str(f.get("node", "")),  # type: ignore[call-overload]
            launcher=str(f.get("launcher") or ""), lane=lane,
            steps=lane_stats(rec, [lane]) if lane is not None else None,
            cpu_cores=sum(own) / len(own) if own else 0.0,
            workers_configured=configured.get(pid), workers_seen=max(alive.values(), default=0),
            worker_cpu_each=_mean(vals), gpu=gpu, ending=_ending(rec, pid, seen[-1].t if seen else None)))
    return views
