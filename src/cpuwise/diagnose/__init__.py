"""Decide: pure rules over a Recording produce Findings with evidence and a fix.

Example:
    from cpuwise.diagnose import diagnose, verdict
    findings = diagnose(Recording.load("doctor-out/recording.json"))
    print(verdict(findings), findings[0].summary)

The rules live in `rules/` (one module each, registered with `@rule`, see `registry`); they read the
Recording and the `Metrics` measured from it once (`metrics.measure`).
"""

from __future__ import annotations

from cpuwise._schema import Recording
from cpuwise.diagnose import rules  # noqa: F401 - importing the package registers every rule
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics, measure
from cpuwise.diagnose.registry import registered, sort_findings

__all__ = ["diagnose", "verdict"]


def diagnose(rec: Recording, m: Metrics | None = None) -> list[Finding]:
    """All findings for `rec`, most important first; never empty ("healthy" or "insufficient_data").

    Args:
        m: `measure(rec)`, when the caller has it already (the renderers take the same one).
    """
    m = measure(rec) if m is None else m
    everyone = registered()
    findings = [f for r in everyone if not r.overall for f in r.run(rec, m)]
    overall = [f for r in everyone if r.overall for f in r.run(rec, m, findings)]
    return sort_findings(findings + overall)


def verdict(findings: list[Finding]) -> str:
    """The id of the most important finding ("insufficient_data" for an empty list)."""
    return sort_findings(findings)[0].id if findings else "insufficient_data"
