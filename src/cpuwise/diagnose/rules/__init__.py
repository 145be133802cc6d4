"""The doctor's rules, one module per rule or small family; importing a module registers its rules.

Each rule is a pure function `(rec, m) -> list[Finding]` declared with `@rule` (its finding ids, its
rank in the order, whether it says how the job ended): see `cpuwise.diagnose.registry`.

Adding a rule: write `rules/<name>.py` with one `@rule(ids=("<id>",), rank=<free rank>)` function,
and add `<name>` to the import below (the registration line). The rule contract
(tests/diagnose/test_rule_contract.py) then asks for a case in `cpuwise.testing.rules.CASES`: a
synthetic recording on which the rule fires.
"""

from __future__ import annotations

# The registration lines: one per rule module.
from cpuwise.diagnose.rules import (  # noqa: F401 - importing a rule module registers its @rule functions
    contention,
    crashed,
    gpu_underused,
    hung,
    input_bound,
    memory_growth,
    oversubscribed,
    straggler,
    swap,
    sync_stalls,
    verdicts,
    worker_startup,
)
