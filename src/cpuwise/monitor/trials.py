"""Run one `cpuwise doctor --try-fixes` trial: a fresh process tree under the doctor, with its overrides.

    run = run_trial(["python", "train.py"], Overrides(num_workers=2, steps=200), timeout=120)
    run.status, run.measured      # "ok", the job's {"steps", "samples", "seconds", ...}

Every process of a trial sees `CPUWISE_TRIAL=1` (and the user's `--trial-env KEY=VALUE`), so a script
can skip its side effects; with `temp_cwd` the trial runs in a fresh temporary folder that is removed
afterwards (the command's relative paths that exist are made absolute first). A trial that crashes,
hangs past its timeout or measures nothing is reported with the reason, never raised.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpuwise._schema import END_CRASHED, END_HUNG, END_INTERRUPTED, Recording
from cpuwise._trials import (
    CRASHED,
    INTERRUPTED,
    NO_STEPS,
    NOT_APPLIED,
    OK,
    OVERRIDES_ENV,
    TIMED_OUT,
    TRIAL_ENV,
    Overrides,
)
from cpuwise.errors import ConfigError
from cpuwise.monitor.runner import run_job

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class TrialRun:
    """One trial run: its recording, the job's measurement, how it ended and why."""

    rec: Recording | None
    measured: dict[str, Any] | None
    status: str
    reason: str = ""
    notes: list[str] = field(default_factory=list)


def parse_trial_env(pairs: list[str]) -> dict[str, str]:
    """`--trial-env KEY=VALUE` pairs as a dict; ConfigError naming the bad one and the fix."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise ConfigError(f"--trial-env expects KEY=VALUE with KEY a variable name (letters, digits, _), "
                              f"found {pair!r}; e.g. --trial-env WANDB_MODE=disabled")
        out[key] = value
    return out


def trial_env(ov: Overrides, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The variables a trial's processes get: CPUWISE_TRIAL, the overrides, thread caps, the user's."""
    env = {TRIAL_ENV: "1", OVERRIDES_ENV: ov.to_json()}
    if ov.threads_main:
        env.update({k: str(ov.threads_main) for k in THREAD_ENV})
    env.update(extra or {})
    return env


def absolute_args(argv: list[str], cwd: Path) -> list[str]:
    """`argv` with the relative paths that exist (under `cwd`) made absolute: the trial runs elsewhere."""
    out = []
    for arg in argv:
        if arg and not arg.startswith("-") and not os.path.isabs(arg) and (cwd / arg).exists():
            out.append(str((cwd / arg).resolve()))
        else:
            out.append(arg)
    return out


def _last_line(text: object) -> str:
    lines = [ln for ln in str(text or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def judge(rec: Recording, ov: Overrides) -> tuple[str, str]:
    """How a trial ended, from its recording: (status, reason)."""
    measured = rec.job_info.get("trial")
    measured = measured if isinstance(measured, dict) else None
    stopped = bool(measured and measured.get("stopped"))
    if rec.end_reason == END_INTERRUPTED:
        return INTERRUPTED, "interrupted (Ctrl-C)"
    if rec.end_reason == END_HUNG:
        return TIMED_OUT, (rec.notes[-1] if rec.notes else "no progress: ended by the doctor")
    if not stopped and (rec.end_reason == END_CRASHED or (rec.exit_code or 0) != 0):
        why = _last_line(rec.job_info.get("python_exception")) or f"exit code {rec.exit_code}"
        return CRASHED, why
    if ov.cpuwise_data and (measured or {}).get("source") != "cpuwise.data":
        notes = rec.job_info.get("trial_notes") or []
        return NOT_APPLIED, (notes[-1] if notes else "no DataLoader the cpuwise.data drop-in could take "
                             "(a map-style Dataset with torch's own sampler, no worker_init_fn)")
    if measured is None or not measured.get("steps"):
        return NO_STEPS, (f"the job made no more than the {ov.warmup} warm-up steps" if measured is None
                          else "no measured steps")
    return OK, ""


def run_trial(argv: list[str], ov: Overrides, *, extra_env: dict[str, str] | None = None,
              temp_cwd: bool = False, timeout: float | None = None, interval: float = 0.1,
              hang_timeout: float | None = None) -> TrialRun:
    """Run `argv` once with the trial `ov` under the doctor (a fresh process tree) and judge it."""
    cwd = Path.cwd()
    work = Path(tempfile.mkdtemp(prefix="cpuwise-trial-")) if temp_cwd else None
    env = trial_env(ov, extra_env)
    cmd = list(argv)
    if work is not None:
        cmd = absolute_args(cmd, cwd)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(cwd)) if p)  # python -m
    try:
        rec = run_job(cmd, interval=interval, hang_timeout=hang_timeout, env=env, cwd=work,
                      time_limit=timeout)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    status, reason = judge(rec, ov)
    measured = rec.job_info.get("trial")
    return TrialRun(rec, measured if isinstance(measured, dict) else None, status, reason)
