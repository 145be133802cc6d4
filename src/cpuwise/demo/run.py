"""Drive the demo: make the JPEGs, run the doctor on the stock job, then (when cpuwise.data is
there) on the same job fed by cpuwise.data, and print the verdicts and a before/after table."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from cpuwise._schema import END_EXITED, Recording
from cpuwise.demo.images import make_dataset
from cpuwise.diagnose import diagnose
from cpuwise.diagnose.metrics import measure
from cpuwise.monitor.runner import run_job
from cpuwise.report import write_reports
from cpuwise.report.terminal import render_summary

BATCH = 32


@dataclass
class DemoRun:
    loader: str
    recording: Recording
    findings: list[Any]
    reports: dict[str, Path]

    @property
    def images_per_s(self) -> float:
        s = measure(self.recording).steps  # every step but the warm-up (it includes starting the workers)
        return BATCH / s.mean_total_s if s is not None and s.mean_total_s > 0 else 0.0

    @property
    def data_wait_share(self) -> float:
        s = measure(self.recording).steps
        return s.wait_share if s is not None else 0.0


def run_one(data: Path, loader: str, seconds: float, out: Path, console: Any) -> DemoRun:
    cmd = [sys.executable, "-m", "cpuwise.demo.train", "--data", str(data), "--loader", loader,
           "--seconds", f"{seconds:g}", "--batch-size", str(BATCH)]
    console.rule(f"cpuwise doctor -- python -m cpuwise.demo.train --loader {loader}")
    rec = run_job(cmd, interval=0.1)
    m = measure(rec)
    findings = diagnose(rec, m)
    reports = write_reports(rec, findings, out, m)
    console.print(render_summary(rec, findings, m))
    console.print(f"[dim]report:[/dim] {reports.get('html', out)}")
    return DemoRun(loader, rec, findings, reports)


def run_demo(out: Path, images: int, quick: bool, console: Any, *, after: bool = True) -> int:
    """The whole demo; returns the exit code for `cpuwise demo`."""
    seconds = 6.0 if quick else 15.0
    console.print(f"Making {images} JPEGs (500x375, photo-like) under {out / 'images'} ...")
    data = make_dataset(out / "images", images)
    before = run_one(data, "stock", seconds, out / "before", console)
    if before.recording.end_reason != END_EXITED:
        console.print(f"[red]The demo job ended {before.recording.end_reason}[/red]; see the report.")
        return 1
    runs = [before]
    if after:
        try:
            fixed = run_one(data, "cpuwise", seconds, out / "after", console)
            if fixed.recording.end_reason == END_EXITED and fixed.recording.step_lanes:
                runs.append(fixed)
            else:
                console.print("[yellow]The cpuwise.data run did not finish cleanly; showing the "
                              "stock run only.[/yellow]")
        except Exception as exc:  # the 'after' half must never break the diagnosis half
            console.print(f"[yellow]Skipped the cpuwise.data run ({type(exc).__name__}: {exc}).[/yellow]")
    elif after:
        console.print("[dim]cpuwise.data is not available here: showing the stock run only.[/dim]")
    console.print(comparison(runs))
    return 0


def comparison(runs: list[DemoRun]) -> Any:
    t = Table(title="Before / after", title_justify="left")
    for col in ("loader", "verdict", "data-wait share", "images/s"):
        t.add_column(col, justify="right" if col in ("data-wait share", "images/s") else "left")
    for r in runs:
        top = r.findings[0] if r.findings else None
        t.add_row(r.loader, getattr(top, "id", "?"), f"{100 * r.data_wait_share:.0f} %",
                  f"{r.images_per_s:.0f}")
    if len(runs) == 2 and runs[0].images_per_s > 0:
        t.caption = f"cpuwise.data: {runs[1].images_per_s / runs[0].images_per_s:.2f}x images/s"
    return t
