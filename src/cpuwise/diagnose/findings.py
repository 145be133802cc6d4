"""A Finding: one thing the doctor concluded, with its evidence and a concrete fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cpuwise.errors import RecordingError

SEVERITIES = ("info", "moderate", "high")
SEVERITY_RANK = {name: i for i, name in enumerate(SEVERITIES)}

# Every finding id a rule may produce. Ties in severity are broken by this order: the ways a job ended
# first, then causes before their symptoms (oversubscription makes preprocessing slow and so the job
# input-bound; input-bound leaves the GPU under-used).
FINDING_IDS = (
    "hung",
    "crashed",
    "oversubscribed",
    "input_bound_cpu_saturated",
    "too_few_workers",
    "io_bound",
    "input_bound",
    "swap",
    "memory_growth",
    "sync_stalls",
    "gpu_underused",
    "healthy",
    "insufficient_data",
)


@dataclass
class Finding:
    """One conclusion of the doctor.

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


def importance(f: Finding) -> tuple[int, int, int, int]:
    """Sort key, most important first when used with sorted(..., key=importance)."""
    order = FINDING_IDS.index(f.id) if f.id in FINDING_IDS else len(FINDING_IDS)
    # Ending states (hung, crashed) always lead: they explain everything else in the recording. Among
    # info-level findings the overall verdict (healthy / insufficient data) leads the side remarks.
    ending = 0 if f.id in ("hung", "crashed") else 1
    overall = 0 if f.id in ("healthy", "insufficient_data") else 1
    return (ending, -SEVERITY_RANK[f.severity], overall, order)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most important first: how the job ended, then severity, then cause before symptom."""
    return sorted(findings, key=lambda f: (importance(f), -f.confidence))
