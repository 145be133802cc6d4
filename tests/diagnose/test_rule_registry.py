"""The rule registry: one rule per finding id, one rule per rank, and the order of findings from it."""

from __future__ import annotations

import pytest

from cpuwise._schema import Recording
from cpuwise.diagnose import registry
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import Metrics
from cpuwise.diagnose.registry import Rule, add, finding_ids, registered, rule, sort_findings
from cpuwise.testing.rules import Case, check_rule


def _nothing(rec: Recording, m: Metrics) -> list[Finding]:
    return []


def test_an_id_or_a_rank_belongs_to_one_rule() -> None:
    taken = registered()[0]
    with pytest.raises(ValueError, match="already belong"):
        add(Rule(name="test.dup_id", fn=_nothing, ids=(taken.ids[0],), rank=12345))
    with pytest.raises(ValueError, match="is taken"):
        add(Rule(name="test.dup_rank", fn=_nothing, ids=("fresh_id",), rank=taken.rank))
    with pytest.raises(ValueError, match="at least one"):
        add(Rule(name="test.no_id", fn=_nothing, ids=(), rank=12346))
    assert "fresh_id" not in finding_ids()


def test_a_new_rule_takes_its_place_in_the_order_from_its_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_RULES", dict(registry._RULES))  # registered for this test only

    @rule(ids=("between",), rank=35)
    def between(rec: Recording, m: Metrics) -> list[Finding]:
        return []

    ids = finding_ids()
    assert ids.index("input_bound") < ids.index("between") < ids.index("swap")
    f = {i: Finding(id=i, title=i, severity="moderate", confidence=0.5, summary=i) for i in ids}
    assert [x.id for x in sort_findings([f["swap"], f["between"], f["oversubscribed"]])] == [
        "oversubscribed", "between", "swap"]


def test_a_rule_without_a_case_breaks_the_contract() -> None:
    with pytest.raises(AssertionError, match="no contract case"):
        check_rule(Rule(name="test.no_case", fn=_nothing, ids=("no_case",), rank=999))


def test_a_rule_that_fires_on_the_healthy_job_breaks_the_contract() -> None:
    def always(rec: Recording, m: Metrics) -> list[Finding]:
        return [Finding(id="always", title="Always", severity="info", confidence=0.5, summary="always")]

    with pytest.raises(AssertionError, match="expected no finding on preset 'compute'"):
        check_rule(Rule(name="test.always", fn=always, ids=("always",), rank=999),
                   {"always": Case("input_bound")})
