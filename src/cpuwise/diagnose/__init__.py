"""Decide: pure rules over a Recording produce Findings with evidence and a fix.

Example:
    from cpuwise.diagnose import diagnose, verdict
    findings = diagnose(Recording.load("doctor-out/recording.json"))
    print(verdict(findings), findings[0].summary)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cpuwise._schema import Recording
    from cpuwise.diagnose.findings import Finding

__all__ = ["diagnose", "verdict"]


def diagnose(rec: Recording) -> list[Finding]:
    """All findings for `rec`, most important first; never empty ("healthy" or "insufficient_data")."""
    from cpuwise.diagnose import rules_end
    from cpuwise.diagnose.findings import sort_findings
    from cpuwise.diagnose.metrics import measure
    from cpuwise.diagnose.rules import all_rules

    m = measure(rec)
    findings = [f for rule in all_rules() for f in rule(rec, m)]
    ended_badly = any(f.id in ("hung", "crashed") for f in findings)
    if not rules_end.enough_data(m) and not ended_badly:
        findings.append(rules_end.insufficient_data(rec, m))
    elif not ended_badly and all(f.severity == "info" for f in findings):
        findings.append(rules_end.healthy(rec, m))
    return sort_findings(findings)


def verdict(findings: list[Finding]) -> str:
    """The id of the most important finding ("insufficient_data" for an empty list)."""
    from cpuwise.diagnose.findings import sort_findings

    return sort_findings(findings)[0].id if findings else "insufficient_data"
