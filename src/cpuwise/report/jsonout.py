"""report.json (recording + findings + verdict) and recording.json (the recording alone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cpuwise._schema import Recording
from cpuwise.diagnose import verdict
from cpuwise.diagnose.findings import Finding


def report_dict(rec: Recording, findings: list[Finding]) -> dict[str, Any]:
    """What report.json holds: the recording, the findings and the verdict."""
    return {
        "recording": rec.to_dict(),
        "findings": [f.to_dict() for f in findings],
        "verdict": verdict(findings),
    }


def write_json(rec: Recording, findings: list[Finding], out_dir: Path) -> dict[str, Path]:
    """Write report.json and recording.json into `out_dir`; returns {"json", "recording"} -> path."""
    report = out_dir / "report.json"
    report.write_text(json.dumps(report_dict(rec, findings), indent=1))
    recording = rec.save(out_dir / "recording.json")
    return {"json": report, "recording": recording}


def load_findings(path: str | Path) -> list[Finding]:
    """The findings of a report.json written by write_json."""
    data = json.loads(Path(path).read_text())
    return [Finding.from_dict(f) for f in data.get("findings", [])]
