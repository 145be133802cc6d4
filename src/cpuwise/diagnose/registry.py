"""The rule registry: each rule declares its finding ids and its place in the order with `@rule`.

    @rule(ids=("swap",), rank=40)
    def swap(rec: Recording, m: Metrics) -> list[Finding]:
        ...

The rule modules live in `cpuwise.diagnose.rules`, whose `__init__` imports each of them (that import
is the registration). `diagnose()` runs every registered rule in rank order, and the order of the
findings it returns comes from here too:

1. findings of `ends_job` rules (hung, crashed) lead: they explain everything else in the recording;
2. then by severity, high first;
3. at equal severity, the `overall` verdict (healthy, insufficient data) leads the side remarks;
4. then by rank, then by the position of the id in its rule's `ids`: causes are ranked before their
   symptoms (oversubscription makes preprocessing slow and so the job input-bound; input-bound leaves
   the GPU under-used);
5. then by confidence, highest first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cpuwise._schema import Recording
from cpuwise.diagnose.findings import SEVERITY_RANK, Finding
from cpuwise.diagnose.metrics import Metrics

F = TypeVar("F", bound=Callable[..., list[Finding]])


@dataclass(frozen=True)
class Rule:
    """One registered rule and what it declared.

    Attributes:
        fn: `fn(rec, m) -> list[Finding]`, pure; an `overall` rule is `fn(rec, m, findings)` and also
            gets the findings of every other rule.
        ids: every finding id `fn` may return, cause before symptom.
        rank: its place in the order (gaps of 10 leave room for a new rule between two).
        ends_job: its findings say how the job ended: they lead, and no overall verdict is added.
        overall: it runs after the other rules and gives the overall verdict when nothing else did.
    """

    name: str  # "module.function", for messages and test ids
    fn: Callable[..., list[Finding]]
    ids: tuple[str, ...]
    rank: int
    ends_job: bool = False
    overall: bool = False

    def run(self, rec: Recording, m: Metrics, findings: Sequence[Finding] = ()) -> list[Finding]:
        """The rule's findings on `rec`; `findings` (those of the other rules) reach `overall` rules only."""
        return self.fn(rec, m, list(findings)) if self.overall else self.fn(rec, m)


_RULES: dict[str, Rule] = {}


def rule(*, ids: Sequence[str], rank: int, ends_job: bool = False, overall: bool = False) -> Callable[[F], F]:
    """Register the decorated function as a rule (see `Rule` for the arguments); returns it unchanged."""

    def register(fn: F) -> F:
        add(Rule(name=f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}", fn=fn, ids=tuple(ids),
                 rank=rank, ends_job=ends_job, overall=overall))
        return fn

    return register


def add(new: Rule) -> None:
    """Register `new`; a rule of the same name is replaced (a reloaded module).

    Raises:
        ValueError: it declares no id, an id or a rank another rule already has.
    """
    if not new.ids:
        raise ValueError(f"rule {new.name}: expected at least one finding id in ids=, found none")
    for other in _RULES.values():
        if other.name == new.name:
            continue
        shared = set(other.ids) & set(new.ids)
        if shared:
            raise ValueError(f"rule {new.name}: finding id(s) {sorted(shared)} already belong to rule "
                             f"{other.name}; each id has one rule")
        if other.rank == new.rank:
            raise ValueError(f"rule {new.name}: rank {new.rank} is taken by rule {other.name}; pick a "
                             "free rank between the rules it should sort between")
    _RULES[new.name] = new


def registered() -> list[Rule]:
    """Every registered rule, in rank order (the order `diagnose` runs them)."""
    return sorted(_RULES.values(), key=lambda r: r.rank)


def finding_ids() -> tuple[str, ...]:
    """Every finding id a rule may produce, in the order ties are broken."""
    return tuple(fid for r in registered() for fid in r.ids)


def rule_of(finding_id: str) -> Rule:
    """The rule that declared `finding_id` (KeyError when none did)."""
    for r in _RULES.values():
        if finding_id in r.ids:
            return r
    raise KeyError(f"no registered rule declares the finding id {finding_id!r}; known: {finding_ids()}")


def ends_job(finding: Finding) -> bool:
    """Whether `finding` says how the job ended (its rule is `ends_job`)."""
    return any(r.ends_job and finding.id in r.ids for r in _RULES.values())


def importance(f: Finding) -> tuple[int, int, int, int]:
    """Sort key, most important first when used with sorted(..., key=importance)."""
    order = finding_ids()
    owner = next((r for r in _RULES.values() if f.id in r.ids), None)
    ending = 0 if owner is not None and owner.ends_job else 1
    overall = 0 if owner is not None and owner.overall else 1
    return (ending, -SEVERITY_RANK[f.severity], overall, order.index(f.id) if f.id in order else len(order))


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most important first: how the job ended, then severity, then cause before symptom."""
    return sorted(findings, key=lambda f: (importance(f), -f.confidence))
