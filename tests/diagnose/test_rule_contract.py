"""Every registered rule keeps the rule contract, and every finding id has a case to prove it."""

from __future__ import annotations

import pytest

from cpuwise.diagnose.registry import Rule, finding_ids, registered
from cpuwise.testing.rules import CASES, check_rule


def test_every_registered_finding_id_has_a_contract_case() -> None:
    # A new rule (or a new id of a rule) without a case fails here: add it to cpuwise.testing.rules.CASES.
    assert set(finding_ids()) == set(CASES)


@pytest.mark.parametrize("rule", registered(), ids=lambda r: r.name)
def test_rule_keeps_the_contract(rule: Rule) -> None:
    check_rule(rule)
