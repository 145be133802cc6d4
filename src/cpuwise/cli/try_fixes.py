"""`cpuwise doctor --try-fixes`: run the job as is, find its bottleneck, then measure each fix.

Collect (`cpuwise.monitor.trials`: each trial a fresh process tree) -> decide (`cpuwise.diagnose.trials`:
the plan, the greedy combination, the winner) -> render (`cpuwise.report`). The first run is the
doctor's diagnosis and sizes the trials: N steps so each takes about `TRIAL_S` seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from cpuwise._trials import INTERRUPTED, OK, Overrides
from cpuwise.diagnose import diagnose
from cpuwise.diagnose.metrics import measure
from cpuwise.diagnose.trials import (
    AS_IS,
    WARMUP,
    Trial,
    TrialResult,
    TryFixes,
    conclude,
    next_combination,
    plan,
    rate_of,
    rate_results,
    result_of,
    steps_for,
)
from cpuwise.errors import ConfigError
from cpuwise.monitor.trials import TrialRun, run_trial
from cpuwise.report import write_reports
from cpuwise.report.terminal import render_summary
from cpuwise.report.trials import render_trials

PROBE_S = 8.0  # seconds of measured steps in the first (diagnosis and sizing) run
MAX_COMBINATIONS = 3
PROBE_TIMEOUT_S = 900.0  # the first run's limit without --trial-timeout: a job that never steps must end


@dataclass(frozen=True)
class TrialOptions:
    """The --try-fixes flags, checked."""

    steps: int | None = None  # measured steps per trial (None: sized from the first run)
    repeats: int = 1
    trial_env: dict[str, str] | None = None
    temp_cwd: bool = False
    timeout: float | None = None  # per trial (None: from the first run's time)
    interval: float = 0.1
    hang_timeout: float | None = None


def check_options(steps: int | None, repeats: int, timeout: float | None) -> None:
    """ConfigError for flags that cannot work, saying what was expected, what was found and the fix."""
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be an integer >= 1 (measured steps per trial), got {steps}; "
                          "leave it out to size trials from the first run.")
    if repeats < 1 or repeats > 9:
        raise ConfigError(f"--repeats must be between 1 and 9 (runs per trial, the median is kept), got "
                          f"{repeats}.")
    if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
        raise ConfigError(f"--trial-timeout must be a number of seconds > 0, got {timeout}; leave it out "
                          "for a limit sized from the first run.")


def _say(console: Console, trial: Trial, run: TrialRun, i: int, total: int | str) -> None:
    rate, unit = rate_of(run.measured)
    what = f"{rate:,.1f} {unit}" if rate is not None and run.status == OK else f"{run.status}: {run.reason}"
    console.print(f"[dim]trial {i}/{total}[/dim] {trial.change}: {what}")


def run_try_fixes(argv: list[str], out: Path, opts: TrialOptions, console: Console,
                  *, as_json: bool = False) -> int:
    """The whole --try-fixes; returns the exit code (the first run's, or 1 when it measured nothing)."""
    probe_ov = Overrides(warmup=WARMUP, steps=0, max_seconds=PROBE_S)
    console.print(f"[bold]cpuwise doctor --try-fixes[/bold]: first run (diagnosis, about {PROBE_S:g} s of "
                  "steps) ...")
    probe = run_trial(argv, probe_ov, extra_env=opts.trial_env, temp_cwd=opts.temp_cwd,
                      interval=opts.interval, hang_timeout=opts.hang_timeout,
                      timeout=opts.timeout or PROBE_TIMEOUT_S)
    rec = probe.rec
    assert rec is not None
    m = measure(rec)
    findings = diagnose(rec, m)
    rate, _ = rate_of(probe.measured)
    if probe.status != OK or rate is None or probe.measured is None:
        paths = write_reports(rec, findings, out, m)
        console.print(render_summary(rec, findings, m))
        console.print(f"[red]No trials: the first run {probe.status} ({probe.reason}).[/red] "
                      f"report: {paths.get('html')}")
        return rec.exit_code or 1
    step_s = float(probe.measured["seconds"]) / max(1, int(probe.measured["steps"]))
    steps = opts.steps or steps_for(step_s)
    startup = max(1.0, rec.duration_s - float(probe.measured["seconds"]))
    timeout = opts.timeout or max(60.0, 3.0 * (startup + steps * step_s) + 30.0)
    trials = plan(rec, findings, steps=steps, upper_seconds=max(2.0, steps * step_s))
    sized = "--steps" if opts.steps else f"sized from the first run: {step_s * 1e3:.0f} ms a step"
    notes = [f"{steps} steps per trial ({sized}); each trial limited to {timeout:.0f} s."]
    console.print(f"Verdict of the first run: [bold]{findings[0].title if findings else '-'}[/bold]. "
                  f"{len(trials)} trials of {steps} steps each ...")
    results: list[TrialResult] = []
    tried: list[Overrides] = []
    interrupted = False

    def run_batch(batch: list[Trial], first: int, total: int | str) -> None:
        """Each trial of `batch` `repeats` times, interleaved round by round (a drift in the machine's load
        touches every trial alike); a trial that fails is not run again."""
        nonlocal interrupted
        measured: list[list[dict[str, Any] | None]] = [[] for _ in batch]
        failed: list[tuple[str, str] | None] = [None for _ in batch]
        for _ in range(opts.repeats):
            for j, trial in enumerate(batch):
                if failed[j] is not None or interrupted:
                    continue
                try:
                    run = run_trial(argv, trial.overrides, extra_env=opts.trial_env, temp_cwd=opts.temp_cwd,
                                    timeout=timeout, interval=opts.interval, hang_timeout=opts.hang_timeout)
                except KeyboardInterrupt:  # Ctrl-C between two trials (in one, the runner stops the job)
                    run = TrialRun(None, None, INTERRUPTED, "interrupted (Ctrl-C)")
                _say(console, trial, run, first + j, total)
                if run.status != OK:
                    failed[j] = (run.status, run.reason)
                    interrupted = run.status == INTERRUPTED
                else:
                    measured[j].append(run.measured)
        for j, trial in enumerate(batch):
            if failed[j] is None and not measured[j] and interrupted:
                continue  # never ran
            status, reason = failed[j] or (OK, "")
            runs = measured[j] if status == OK else []
            results.append(result_of(trial, runs, status=status, reason=reason))
            tried.append(trial.overrides)

    run_batch(trials, 1, len(trials))
    if any(r.kind == AS_IS and r.status != OK for r in results):
        notes.append("the as-is trial did not measure: no speed-ups can be given")
    combos = 0
    while not interrupted and combos < MAX_COMBINATIONS:
        rate_results(results)
        combo = next_combination(results, tried, steps=steps)
        if combo is None:
            break
        combos += 1
        run_batch([combo], len(trials) + combos, "+")
    if interrupted:
        notes.append("interrupted: the trials after the interrupted one did not run (or not every repeat)")
    outcome: TryFixes = conclude(rec, results, steps=steps, repeats=opts.repeats, notes=notes)
    paths = write_reports(rec, findings, out, m, trials=outcome)
    if as_json:
        summary = outcome.to_dict()
        print(json.dumps({"end_reason": rec.end_reason, "exit_code": rec.exit_code,
                          "findings": [f.to_dict() for f in findings], "trials": summary.pop("trials"),
                          "try_fixes": summary, "reports": {k: str(v) for k, v in paths.items()}}, indent=1))
    else:
        console.print(render_summary(rec, findings, m))
        console.print(render_trials(outcome))
        for name, path in paths.items():
            console.print(f"[dim]{name}:[/dim] {path}")
    return 130 if interrupted else 0
