"""Recordings merged from several nodes (`cpuwise doctor --merge`): each node's own view, and one
diagnosis of them all (pure).

A machine's rules (CPU saturation, oversubscription, contention, memory) only make sense per machine,
so each node is diagnosed on its own view; the rules across ranks (stragglers) run on every rank of
every node at once. Node findings carry the node's name in their title.
"""

from __future__ import annotations

from dataclasses import replace

from cpuwise._schema import Recording
from cpuwise.diagnose.findings import Finding

PID_STRIDE = 10_000_000  # as cpuwise.monitor.merge makes pids unique: node i's pid p is i * PID_STRIDE + p
CROSS_NODE = ("straggler",)  # rules that compare ranks across nodes


def nodes_of(rec: Recording) -> list[str]:
    """The node names of a merged recording ([] for one node's own)."""
    nodes = rec.host.get("nodes") if isinstance(rec.host, dict) else None
    return [str(n) for n in nodes] if isinstance(nodes, list) and len(nodes) > 1 else []


def node_view(rec: Recording, node: str) -> Recording:
    """What one node of a merged recording saw, as a recording of its own."""
    names = nodes_of(rec)
    i = names.index(node)

    def mine(pid: object) -> bool:
        return isinstance(pid, int) and pid // PID_STRIDE == i

    hosts = rec.host.get("node_hosts")
    hosts = hosts if isinstance(hosts, dict) else {}
    info = dict(rec.job_info)
    for key in ("ranks", "thread_pools", "exceptions"):
        value = info.get(key)
        if isinstance(value, dict):
            info[key] = {k: v for k, v in value.items() if k.isdigit() and mine(int(k))}
    info["exited"] = [p for p in info.get("exited") or [] if mine(p)]
    info["dataloaders"] = [d for d in info.get("dataloaders") or []
                           if isinstance(d, dict) and mine(d.get("pid"))]
    return replace(
        rec, host=dict(hosts.get(node) or rec.host),
        system=[s for s in rec.system if s.node == node],
        processes=[p for p in rec.processes if p.node == node],
        gpus=[g for g in rec.gpus if g.node == node],
        steps=[s for s in rec.steps if s.node == node],
        step_lanes=[lane for lane in rec.step_lanes if lane.node == node],
        stacks={k: v for k, v in rec.stacks.items() if k.startswith(f"{node}:")},
        job_info=info,
    )


def tag(findings: list[Finding], node: str) -> list[Finding]:
    """`findings` of one node, its name in front of each title."""
    return [replace(f, title=f"[{node}] {f.title}") for f in findings]
