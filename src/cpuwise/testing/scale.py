"""Does `cpuwise doctor` stay small and quick however many steps a job makes? Measure it on a job that
steps as fast as it can (a TensorDataset through a DataLoader, one sample per step).

    result = measure_scale(60.0, Path("/tmp/scale"))
    result.doctor_peak_rss_bytes, result.report_s, result.steps_job, result.steps_recorded

The doctor runs as the real command (`python -m cpuwise.cli.doctor --out DIR -- python -c JOB`); its RSS
is polled while it runs. `report_s` is the time from the job's last step to the doctor's exit, by
which every report (terminal, HTML, JSON, TensorBoard) is written. Used by tests/e2e/test_doctor_scale.py
and benchmarks/doctor_scale.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

# Epochs of 4096 one-sample batches until the time is up; every epoch ends (StopIteration), so every
# step is closed and the doctor's total must equal the job's own count exactly.
FAST_STEPS_JOB = """
import json, sys, time
import torch
from torch.utils.data import DataLoader, TensorDataset
seconds, out = float(sys.argv[1]), sys.argv[2]
torch.set_num_threads(1)
loader = DataLoader(TensorDataset(torch.arange(4096)), batch_size=1)
end = time.perf_counter() + seconds
steps = 0
while time.perf_counter() < end:
    for (x,) in loader:
        steps += 1
with open(out, "w") as f:
    json.dump({"steps": steps, "end": time.time()}, f)
"""


@dataclass
class ScaleResult:
    seconds: float
    exit_code: int | None
    steps_job: int  # what the job counted
    steps_recorded: int  # what the doctor's recording says (exact totals)
    steps_per_s: float
    doctor_peak_rss_bytes: int  # polled while it ran (the doctor process itself)
    doctor_self_peak_rss_bytes: int | None  # the kernel's high-water mark, from recording.json
    report_s: float | None  # the job's end -> the doctor's exit (every report written)
    reports: dict[str, bool]  # which reports exist
    killed: str | None  # why the harness ended the doctor early (limits exceeded), else None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def measure_scale(seconds: float, out: Path, *, rss_limit_bytes: int = 300 * 2**20,
                  report_limit_s: float = 30.0) -> ScaleResult:
    """Run the fast-stepping job for `seconds` under the doctor into `out` and measure the doctor.

    The doctor is ended early (and `killed` says why) once its RSS passes 4x `rss_limit_bytes` or
    it has not finished 4x `report_limit_s` after the job ended: a regression fails fast instead of
    filling the machine's memory or the test's time.
    """
    out.mkdir(parents=True, exist_ok=True)
    counts = out / "job.json"
    cmd = [sys.executable, "-m", "cpuwise.cli.doctor", "--out", str(out / "report"), "--", sys.executable,
           "-c", FAST_STEPS_JOB, str(seconds), str(counts)]
    with open(out / "doctor.stdout", "wb") as stdout:
        doctor = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
    peak, killed, exited_at = 0, None, None
    try:
        me = psutil.Process(doctor.pid)
        while doctor.poll() is None:
            try:
                peak = max(peak, int(me.memory_info().rss))
            except psutil.Error:
                pass
            if peak > 4 * rss_limit_bytes:
                killed = f"doctor RSS {peak / 2**20:.0f} MiB"
            elif counts.exists() and time.time() - _job_end(counts, time.time()) > 4 * report_limit_s:
                killed = f"no report {4 * report_limit_s:.0f} s after the job's end"
            if killed:
                os.killpg(doctor.pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        doctor.wait()
        exited_at = time.time()
    finally:
        if doctor.poll() is None:
            os.killpg(doctor.pid, signal.SIGKILL)
            doctor.wait()
    job: dict[str, Any] = json.loads(counts.read_text()) if counts.exists() else {"steps": 0, "end": None}
    report = out / "report"
    recorded, self_peak = 0, None
    if (report / "recording.json").exists():
        rec = json.loads((report / "recording.json").read_text())
        recorded = sum(int(lane["n"]) for lane in rec.get("step_lanes", []))
        self_peak = rec.get("doctor", {}).get("peak_rss_bytes")
    tb = report / "tb"
    reports = {
        "terminal": "cpuwise doctor" in (out / "doctor.stdout").read_text(errors="replace"),
        "html": (report / "report.html").is_file(),
        "json": (report / "report.json").is_file(),
        "tensorboard": tb.is_dir() and any(p.name.startswith("events") for p in tb.iterdir()),
    }
    return ScaleResult(
        seconds=seconds, exit_code=doctor.returncode, steps_job=int(job["steps"]), steps_recorded=recorded,
        steps_per_s=int(job["steps"]) / seconds, doctor_peak_rss_bytes=peak,
        doctor_self_peak_rss_bytes=self_peak,
        report_s=None if job["end"] is None or exited_at is None else exited_at - float(job["end"]),
        reports=reports, killed=killed)


def _job_end(counts: Path, default: float) -> float:
    try:
        return float(json.loads(counts.read_text())["end"])
    except (OSError, ValueError, KeyError, TypeError):
        return default
