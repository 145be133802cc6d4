"""report.json (recording + findings + verdict) and recording.json (the recording alone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cpuwise._schema import Recording
from cpuwise.diagnose import verdict
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.trials import TryFixes


def report_dict(rec: Recording, findings: list[Finding], trials: TryFixes | None = None) -> dict[str, Any]:
    """What report.json holds: the recording, the findings and the verdict; with --try-fixes also
    "trials" (one per trial: change, samples_per_s, speedup, share_of_upper, status, ...) and
    "try_fixes" (N steps, repeats, the best change and its code)."""
    out = {
        "recording": rec.to_dict(),
        "findings": [f.to_dict() for f in findings],
        "verdict": verdict(findings),
    }
    if trials is not None:
        summary = trials.to_dict()
        out["trials"] = summary.pop("trials")
        out["try_fixes"] = summary
    return out


def write_json(rec: Recording, findings: list[Finding], out_dir: Path,
               trials: TryFixes | None = None) -> dict[str, Path]:
    """Write report.json and recording.json into `out_dir`; returns {"json", "recording"} -> path."""
    report = out_dir / "report.json"
    report.write_text(json.dumps(report_dict(rec, findings, trials), indent=1))
    recording = rec.save(out_dir / "recording.json")
    return {"json": report, "recording": recording}


def load_findings(path: str | Path) -> list[Finding]:
    """The findings of a report.json written by write_json."""
    data = json.loads(Path(path).read_text())
    return [Finding.from_dict(f) for f in data.get("findings", [])]
