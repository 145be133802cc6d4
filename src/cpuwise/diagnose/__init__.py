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
from cpuwise.diagnose.nodes import CROSS_NODE, node_view, nodes_of, tag
from cpuwise.diagnose.registry import registered, sort_findings

__all__ = ["diagnose", "verdict"]


def diagnose(rec: Recording, m: Metrics | None = None) -> list[Finding]:
    """All findings for `rec`, most important first; never empty ("healthy" or "insufficient_data").

    Args:
        m: `measure(rec)`, when the caller has it already (the renderers take the same one).
    """
    m = measure(rec) if m is None else m
    nodes = nodes_of(rec)
    if nodes:  # merged from several nodes: each machine on its own, ranks across all of them
        across = [f for r in registered() if any(i in CROSS_NODE for i in r.ids) for f in r.run(rec, m)]
        per_node = [f for n in nodes for f in tag(diagnose(node_view(rec, n)), n)
                    if not (f.id in CROSS_NODE and across)]
        return sort_findings(across + per_node)
    everyone = registered()
    findings = [f for r in everyone if not r.overall for f in r.run(rec, m)]
    overall = [f for r in everyone if r.overall for f in r.run(rec, m, findings)]
    return sort_findings(findings + overall)


def verdict(findings: list[Finding]) -> str:
    """The id of the most important finding ("insufficient_data" for an empty list)."""
    return sort_findings(findings)[0].id if findings else "insufficient_data"
