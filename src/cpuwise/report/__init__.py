"""Render: terminal, HTML, JSON and TensorBoard views of a Recording and its Findings.

Example:
    from cpuwise.report import write_reports
    paths = write_reports(rec, diagnose(rec), Path("doctor-out"))   # {"html": ..., "json": ..., ...}
"""

from __future__ import annotations

from pathlib import Path

from cpuwise._schema import Recording
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.trials import TryFixes
from cpuwise.report.html import render_html
from cpuwise.report.jsonout import write_json
from cpuwise.report.tensorboard import write_tensorboard

__all__ = ["write_reports"]


def write_reports(rec: Recording, findings: list[Finding], out_dir: Path,
                  m: Metrics | None = None, trials: TryFixes | None = None) -> dict[str, Path]:
    """Write report.html, report.json, recording.json and (when tensorboard is installed) tb/.

    Returns {"html", "json", "recording"[, "tensorboard"]} -> path. When TensorBoard is skipped, the
    reason is added to `rec.notes` before anything is written, so every report says it.

    Args:
        m: `measure(rec)`, when the caller has it already (as `diagnose` took it).
        trials: what `cpuwise doctor --try-fixes` measured (a table in the HTML, "trials" in the JSON).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tb_dir, why = write_tensorboard(rec, out_dir)
    if why and why not in rec.notes:
        rec.notes.append(why)
    paths: dict[str, Path] = {}
    html = out_dir / "report.html"
    html.write_text(render_html(rec, findings, m, trials), encoding="utf-8")
    paths["html"] = html
    paths.update(write_json(rec, findings, out_dir, trials))
    if tb_dir is not None:
        paths["tensorboard"] = tb_dir
    return paths
