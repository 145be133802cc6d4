"""`cpuwise doctor --try-fixes`, the pure part: which trials to run, how to rate them, which won.

    trials = plan(rec, findings, steps=200)                 # as is, upper bound, each fix
    ... run each (cpuwise.monitor.trials), then:
    extra = next_combination(results, tried)                # greedy: the helping fixes, best first
    outcome = conclude(rec, results, steps=200, repeats=1)  # speed-ups, shares, the winner's code

A trial's rate is samples/s over its measured steps (steps/s stops being comparable once a trial changes
the batch size); its speed-up is against the as-is trial of the same N steps, its share against the
upper bound (the input pipeline taken out: the most any data fix can give).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from cpuwise._schema import Recording
from cpuwise._trials import NO_STEPS, OK, Overrides, describe
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.idioms import HF, KERAS, LIGHTNING, TORCH, idiom_of

AS_IS, UPPER, FIX, COMBINATION = "as is", "upper bound", "fix", "combination"
HELPS = 1.05  # a fix "helps" above 5 % (two runs of one job on a quiet machine differ by ~2-3 %)
TRIAL_S = 8.0  # seconds of measured steps per trial: minutes for the whole try-fixes
MIN_STEPS, MAX_STEPS = 20, 5000
REPLAY_BATCHES = 4  # distinct real batches the upper bound replays
WARMUP = 5  # deliveries not measured in any trial: worker start-up, first-touch costs
INPUT_IDS = ("too_few_workers", "input_bound_cpu_saturated", "io_bound", "input_bound", "worker_startup",
             "straggler")


@dataclass(frozen=True)
class Trial:
    """One run to measure: a change (what the table calls it) and the overrides that make it."""

    change: str
    overrides: Overrides
    kind: str = FIX  # AS_IS, UPPER, FIX or COMBINATION
    why: str = ""  # the finding(s) that named it


@dataclass
class TrialResult:
    """One trial as measured: its rate (the median of its repeats), or why it has none."""

    change: str
    kind: str
    status: str  # cpuwise._trials: OK, CRASHED, TIMED_OUT, NO_STEPS, NOT_APPLIED, INTERRUPTED
    samples_per_s: float | None = None
    speedup: float | None = None  # vs as is
    share_of_upper: float | None = None  # of the upper bound's rate
    steps: int = 0
    rates: list[float] = field(default_factory=list)  # one per repeat
    unit: str = "samples/s"  # "steps/s" when the batches' samples could not be counted
    reason: str = ""
    why: str = ""
    changes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TryFixes:
    """Every trial of one `--try-fixes`, the winner and its code."""

    steps: int
    warmup: int
    repeats: int
    results: list[TrialResult]
    best: TrialResult | None  # the fastest fix or combination that helped (None: none did)
    code: str  # the winner's settings as a diff in the job's idiom
    idiom: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "warmup": self.warmup, "repeats": self.repeats,
                "trials": [r.to_dict() for r in self.results],
                "best": self.best.change if self.best else None, "code": self.code, "idiom": self.idiom,
                "notes": list(self.notes)}


def steps_for(step_s: float, seconds: float = TRIAL_S) -> int:
    """N measured steps so a trial lasts about `seconds` at the as-is step time `step_s`."""
    if step_s <= 0:
        return MIN_STEPS
    return max(MIN_STEPS, min(MAX_STEPS, int(round(seconds / step_s))))


def rate_of(measured: dict[str, Any] | None) -> tuple[float | None, str]:
    """A trial's rate from the job's "trial" record: samples/s, else steps/s (batch not countable)."""
    if not isinstance(measured, dict):
        return None, "samples/s"
    seconds = float(measured.get("seconds") or 0.0)
    steps = int(measured.get("steps") or 0)
    if seconds <= 0 or steps <= 0:
        return None, "samples/s"
    if measured.get("samples_known") and int(measured.get("samples") or 0) > 0:
        return float(measured["samples"]) / seconds, "samples/s"
    return steps / seconds, "steps/s"


def main_loader(rec: Recording) -> dict[str, Any]:
    """The settings of the DataLoader the job trained from (the first one its main process made)."""
    loaders = [d for d in rec.job_info.get("dataloaders") or [] if isinstance(d, dict)]
    return loaders[0] if loaders else {}


def plan(rec: Recording, findings: list[Finding], *, steps: int, warmup: int = WARMUP,
         upper_seconds: float = 0.0) -> list[Trial]:
    """As is, the upper bound, then one trial per fix the findings name (deduplicated, in their order).

    The upper bound's steps are shorter: with `upper_seconds` it runs for that long (the as-is trial's
    time) rather than N steps, so its rate is not a fraction of a second's, taken while the real loader's
    workers still finish the batches they had started.

    The fixes, without editing the job: more workers (the usable cores; twice that for waits on reads),
    persistent workers, a deeper prefetch, thread caps (one per worker, the rest of the cores in main),
    cpuwise.data's DataLoader for a plain torch job, and a doubled batch for small steps / an idle GPU.
    """
    base = Overrides(steps=steps, warmup=warmup)
    upper = (Overrides(replay=REPLAY_BATCHES, steps=MAX_STEPS * 20, warmup=warmup, max_seconds=upper_seconds)
             if upper_seconds > 0 else Overrides(replay=REPLAY_BATCHES, steps=steps, warmup=warmup))
    trials = [Trial(AS_IS, base, AS_IS), Trial(UPPER, upper, UPPER)]
    ids = [f.id for f in findings]
    dl = main_loader(rec)
    workers = int(dl.get("num_workers") or 0)
    cores = max(1, int(rec.host.get("usable_cores") or 1))
    batch = dl.get("batch_size")
    idiom = idiom_of(rec).name
    fixes: list[tuple[dict[str, Any], str]] = []
    reads = "io_bound" in ids
    if any(i in INPUT_IDS for i in ids) and idiom != KERAS:
        target = 2 * cores if reads else cores
        if workers < target:
            fixes.append(({"num_workers": target, "persistent_workers": True},
                          "io_bound" if reads else next(i for i in ids if i in INPUT_IDS)))
        if workers > 0 and not dl.get("persistent_workers"):
            fixes.append(({"persistent_workers": True}, "worker_startup" if "worker_startup" in ids
                          else "input_bound"))
        if workers > 0 and int(dl.get("prefetch_factor") or 2) < 4 and ("input_bound" in ids or reads):
            fixes.append(({"prefetch_factor": 4}, "input_bound"))
        if idiom == TORCH and not rec.pipeline_stats:
            fixes.append(({"cpuwise_data": True}, next(i for i in ids if i in INPUT_IDS)))
    if idiom == KERAS and any(i in INPUT_IDS for i in ids):
        fw = idiom_of(rec).facts
        keras_workers = int(fw.get("workers") or 1) if fw.get("use_multiprocessing") else 1
        if keras_workers < cores:
            fixes.append(({"num_workers": cores}, next(i for i in ids if i in INPUT_IDS)))
    if "oversubscribed" in ids or ("cpu_contention" in ids and _threads_over(rec, cores)):
        main = max(1, cores - workers) if workers else cores
        fixes.append(({"threads_main": main, "threads_worker": 1} if workers else {"threads_main": main},
                      "oversubscribed"))
    if isinstance(batch, int) and batch > 0 and ("gpu_underused" in ids or "input_bound" in ids):
        why = "gpu_underused" if "gpu_underused" in ids else "input_bound"
        fixes.append(({"batch_size": 2 * batch}, why))
    seen: set[str] = set()
    for changes, why in fixes:
        ov = Overrides(steps=steps, warmup=warmup, **changes)
        key = ov.to_json()
        if key in seen:
            continue
        seen.add(key)
        trials.append(Trial(describe(ov.changes()), ov, FIX, why))
    return trials


def _threads_over(rec: Recording, cores: int) -> bool:
    """The job's processes hold more compute threads than the usable cores."""
    pools = rec.job_info.get("thread_pools") or {}
    total = sum(int(p.get("torch_intra") or 1) for p in pools.values() if isinstance(p, dict))
    return total > cores


def next_combination(results: list[TrialResult], tried: list[Overrides], *, steps: int,
                     warmup: int = WARMUP) -> Trial | None:
    """The next greedy combination to measure: the best so far with the next helping fix that it does
    not contain and does not conflict with (None: nothing left to combine).

    `results` hold the fixes and combinations measured so far (with speed-ups), `tried` the overrides
    already run.
    """
    ok = [r for r in results if r.status == OK and r.speedup is not None and r.kind in (FIX, COMBINATION)]
    helping = sorted((r for r in ok if (r.speedup or 0) >= HELPS and r.kind == FIX),
                     key=lambda r: -(r.speedup or 0))
    if len(helping) < 2:
        return None
    best = max((r for r in ok if (r.speedup or 0) >= HELPS), key=lambda r: r.speedup or 0)
    kept = Overrides(steps=steps, warmup=warmup, **best.changes)
    for r in helping:
        fix = Overrides(**r.changes)
        if all(kept.changes().get(k) == v for k, v in fix.changes().items()) or kept.conflicts(fix):
            continue
        combo = kept.merged(fix)
        if any(combo.changes() == t.changes() for t in tried):
            continue
        return Trial(describe(combo.changes()), combo, COMBINATION, "the fixes that helped, combined")
    return None


def result_of(trial: Trial, measured: list[dict[str, Any] | None], *, status: str = OK,
              reason: str = "") -> TrialResult:
    """A trial's result from its repeats' "trial" records (the median rate of those that measured)."""
    rates, unit, steps = [], "samples/s", 0
    for m in measured:
        rate, unit_m = rate_of(m)
        if rate is not None:
            rates.append(rate)
            unit = unit_m
            steps = max(steps, int((m or {}).get("steps") or 0))
    if status == OK and not rates:
        status, reason = NO_STEPS, reason or "the job made no measured steps (fewer than the warm-up?)"
    return TrialResult(change=trial.change, kind=trial.kind, status=status,
                       samples_per_s=statistics.median(rates) if rates else None, steps=steps,
                       rates=[round(r, 3) for r in rates], unit=unit, reason=reason, why=trial.why,
                       changes=trial.overrides.changes())


def rate_results(results: list[TrialResult]) -> None:
    """Fill each result's speed-up (vs as is) and share of the upper bound, in place."""
    base = next((r for r in results if r.kind == AS_IS and r.samples_per_s), None)
    upper = next((r for r in results if r.kind == UPPER and r.samples_per_s), None)
    for r in results:
        if r.samples_per_s is None:
            continue
        if base is not None and base.samples_per_s and r.unit == base.unit:
            r.speedup = round(r.samples_per_s / base.samples_per_s, 3)
        if upper is not None and upper.samples_per_s and r.unit == upper.unit:
            r.share_of_upper = round(r.samples_per_s / upper.samples_per_s, 3)


def conclude(rec: Recording, results: list[TrialResult], *, steps: int, repeats: int,
             warmup: int = WARMUP, notes: list[str] | None = None) -> TryFixes:
    """Rate every result, pick the winner (the fastest fix or combination that helped) and write its
    settings as a diff in the job's idiom. Results are listed as is, upper bound, then fastest first."""
    rate_results(results)
    order = {AS_IS: 0, UPPER: 1}
    results = sorted(results, key=lambda r: (order.get(r.kind, 2), r.status != OK, -(r.speedup or 0.0)))
    candidates = [r for r in results if r.kind in (FIX, COMBINATION) and r.status == OK
                  and (r.speedup or 0) >= HELPS]
    best = max(candidates, key=lambda r: r.speedup or 0) if candidates else None
    code = settings_diff(rec, best.changes) if best is not None else ""
    return TryFixes(steps=steps, warmup=warmup, repeats=repeats, results=results, best=best, code=code,
                    idiom=idiom_of(rec).label, notes=list(notes or []))


def _kwargs(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in settings.items())


def settings_diff(rec: Recording, changes: dict[str, Any]) -> str:
    """The changed settings as a diff the user can paste, in the idiom of the job's framework."""
    dl = main_loader(rec)
    idiom = idiom_of(rec)
    loader_keys = ("batch_size", "num_workers", "persistent_workers", "prefetch_factor", "pin_memory")
    before: dict[str, Any] = {"batch_size": dl.get("batch_size", "batch_size")}
    workers = int(dl.get("num_workers") or 0)
    before["num_workers"] = workers
    if dl.get("persistent_workers"):
        before["persistent_workers"] = True
    if workers and dl.get("prefetch_factor") not in (None, 2):
        before["prefetch_factor"] = dl.get("prefetch_factor")
    if dl.get("pin_memory"):
        before["pin_memory"] = True
    after = dict(before)
    after.update({k: v for k, v in changes.items() if k in loader_keys})
    if not after.get("num_workers"):
        after.pop("persistent_workers", None)
        after.pop("prefetch_factor", None)
    lines: list[str] = []
    loader_changed = after != before
    if idiom.name == HF:
        names = {"batch_size": "per_device_train_batch_size", "num_workers": "dataloader_num_workers",
                 "persistent_workers": "dataloader_persistent_workers",
                 "prefetch_factor": "dataloader_prefetch_factor", "pin_memory": "dataloader_pin_memory"}
        lines.append("  args = TrainingArguments(")
        for k in loader_keys:
            if k in changes and before.get(k) != after.get(k):
                if k in before:
                    lines.append(f"-     {names[k]}={before[k]!r},")
                lines.append(f"+     {names[k]}={after[k]!r},")
        lines.append("      ...)")
    elif idiom.name == KERAS:
        if "num_workers" in changes:
            lines += [f"- super().__init__(workers={before['num_workers'] or 1}, **kwargs)",
                      f"+ super().__init__(workers={after['num_workers']}, use_multiprocessing=True,"
                      " **kwargs)"]
    elif loader_changed or changes.get("cpuwise_data"):
        if changes.get("cpuwise_data"):
            lines += ["- from torch.utils.data import DataLoader",
                      "+ from cpuwise.data.adapters.torch import DataLoader   # cpuwise.data's drop-in"]
            if "num_workers" not in changes:
                after["num_workers"] = None  # the drop-in sizes its workers
                after.pop("persistent_workers", None)
                after.pop("prefetch_factor", None)
        if loader_changed or changes.get("cpuwise_data"):
            if idiom.name == LIGHTNING:
                where = "self.train" if idiom.facts.get("loader_from") != "module" else "self.train_set"
                lines.append("  def train_dataloader(self):")
                lines += [f"-     return DataLoader({where}, {_kwargs(before)})",
                          f"+     return DataLoader({where}, {_kwargs(after)})"]
            elif after != before:
                lines += [f"- loader = DataLoader(dataset, {_kwargs(before)})",
                          f"+ loader = DataLoader(dataset, {_kwargs(after)})"]
    main, worker = changes.get("threads_main"), changes.get("threads_worker")
    if main or worker:
        if worker and changes.get("cpuwise_data"):
            lines.append("  # cpuwise.data's workers already run one thread each (no worker_init_fn there)")
        elif worker:
            lines += ["+ def worker_init_fn(worker_id):",
                      f"+     torch.set_num_threads({worker})                      # per data worker",
                      f"+     threadpoolctl.threadpool_limits({worker})            # numpy/BLAS/OpenMP too",
                      "  loader = DataLoader(..., worker_init_fn=worker_init_fn)"]
        if main:
            lines += [f"+ torch.set_num_threads({main})                          # the main process",
                      f"# or for the whole job: OMP_NUM_THREADS={main} MKL_NUM_THREADS={main} "
                      "python train.py"]
    return "\n".join(lines)
