"""A Finding: one thing the doctor concluded, with its evidence and a concrete fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cpuwise.errors import RecordingError

SEVERITIES = ("info", "moderate", "high")
SEVERITY_RANK = {name: i for i, name in enumerate(SEVERITIES)}


@dataclass(kw_only=True)
class Finding:
    """One conclusion of the doctor. Fields are keyword-only: eight positional values read as noise.

    Where a finding sorts among others is declared by the rule that makes it (`cpuwise.diagnose.registry`).

    Example:
        Finding(id="input_bound", title="Input-bound", severity="high", confidence=0.9,
                summary="62 % of each step waits for data.", evidence=["data-wait 62 % of 40 steps"],
                fix="Raise num_workers to 2.", fix_code="DataLoader(ds, num_workers=2)")
    """

    id: str
    title: str
    severity: str  # "info" | "moderate" | "high"
    confidence: float  # 0..1
    summary: str
    evidence: list[str] = field(default_factory=list)
    fix: str = ""
    fix_code: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """A finding from report.json; raises RecordingError when a required field is missing."""
        try:
            return cls(
                id=str(data["id"]),
                title=str(data["title"]),
                severity=str(data["severity"]),
                confidence=float(data["confidence"]),
                summary=str(data["summary"]),
                evidence=[str(e) for e in data.get("evidence", [])],
                fix=str(data.get("fix", "")),
                fix_code=str(data.get("fix_code", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordingError(
                f"expected a finding with id, title, severity, confidence and summary; found {data!r} "
                f"({exc}). Re-run `cpuwise doctor` to write a fresh report.json."
            ) from exc
