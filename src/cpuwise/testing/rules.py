"""The contract every doctor rule passes, and the synthetic case on which each finding id shows.

    from cpuwise.diagnose.registry import registered
    from cpuwise.testing.rules import check_rule
    for r in registered():
        check_rule(r)          # AssertionError naming the rule and the broken promise

A rule promises: it returns a finding with each id it declares on that id's case (a preset of
`cpuwise.testing.recordings`), nothing on the case's quiet recording, only ids it declares, the same
findings twice in a row, no change to the recording, and no exception on an empty recording.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cpuwise._schema import END_EXITED, GpuStatus, Recording
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import measure
from cpuwise.diagnose.registry import Rule, registered
from cpuwise.testing.recordings import fake_recording


@dataclass(frozen=True)
class Case:
    """Where one finding id must show up, and a recording on which its rule must stay silent.

    Args:
        fires: a preset of `cpuwise.testing.recordings.PRESETS`; `overrides` are FakeJob fields.
        quiet: a preset on which the rule returns nothing (default: the healthy compute-bound job).
    """

    fires: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    quiet: str = "compute"

    def firing(self) -> Recording:
        """The recording on which the finding must show."""
        return fake_recording(self.fires, **self.overrides)

    def silent(self) -> Recording:
        """The recording on which the rule must return nothing."""
        return fake_recording(self.quiet)


# One case per finding id of every registered rule (tests/diagnose/test_rule_contract.py fails when a
# registered id has none).
CASES: dict[str, Case] = {
    "hung": Case("hung"),
    "crashed": Case("crashed"),
    "oversubscribed": Case("oversubscribed"),
    "input_bound_cpu_saturated": Case("input_bound"),
    "too_few_workers": Case("too_few_workers"),
    "io_bound": Case("io_bound"),
    # 4 cores, workers at 30 % of a core each while the main process stays busy through its data-wait (a
    # pin_memory thread): neither the CPU nor the workers are busy, and the workers are not the ones waiting.
    "input_bound": Case("input_bound", {"cores": 4, "worker_cpu": 0.3, "main_cpu": 0.9}),
    "swap": Case("swap"),
    "memory_growth": Case("memory_growth"),
    "sync_stalls": Case("sync_stalls"),
    "gpu_underused": Case("gpu_underused"),
    "cpu_contention": Case("contention"),
    "worker_startup": Case("worker_startup"),
    # two ranks both input-bound alike: no straggler, the input-bound finding covers it
    "straggler": Case("straggler", quiet="ddp"),
    "healthy": Case("compute", quiet="input_bound"),
    "insufficient_data": Case("input_bound", {"steps": 4}),
}


def empty_recording() -> Recording:
    """A run that recorded nothing: no samples, no steps, no host facts."""
    return Recording(command=["python", "train.py"], started_at="2026-01-01T00:00:00+00:00", duration_s=0.0,
                     interval_s=0.1, end_reason=END_EXITED, exit_code=0, host={},
                     gpu=GpuStatus(available=False, reason="none"))


def run_rule(r: Rule, rec: Recording) -> list[Finding]:
    """What `r` returns on `rec`, called as `diagnose` calls it (an overall rule also gets the findings
    of the other rules)."""
    m = measure(rec)
    others = [f for o in registered() if not o.overall for f in o.run(rec, m)] if r.overall else []
    return r.run(rec, m, others)


def _expect(ok: bool, message: str) -> None:
    # not `assert`: the contract must hold under `python -O` too
    if not ok:
        raise AssertionError(message)


def check_rule(r: Rule, cases: Mapping[str, Case] = CASES) -> None:
    """Check the rule contract (see the module docstring) for `r` on its cases.

    Raises:
        AssertionError: naming the rule, the case and the promise it broke.
    """
    missing = [fid for fid in r.ids if fid not in cases]
    _expect(not missing, f"rule {r.name}: no contract case for finding id(s) {missing}; add one to "
            "cpuwise.testing.rules.CASES (a preset of cpuwise.testing.recordings on which it fires)")
    for fid in r.ids:
        case = cases[fid]
        rec = case.firing()
        before = copy.deepcopy(rec)
        found = run_rule(r, rec)
        _expect(rec == before, f"rule {r.name} changed the recording it read (case {fid}): rules are pure")
        _expect(run_rule(r, rec) == found, f"rule {r.name} gave different findings twice on case {fid}")
        ids = [f.id for f in found]
        _expect(fid in ids, f"rule {r.name}: expected a finding {fid!r} on {case}, found {ids}")
        undeclared = set(ids) - set(r.ids)
        _expect(not undeclared, f"rule {r.name} returned ids it does not declare: {sorted(undeclared)}")
        quiet = [f.id for f in run_rule(r, case.silent())]
        _expect(not quiet, f"rule {r.name}: expected no finding on preset {case.quiet!r}, found {quiet}")
    empty = {f.id for f in run_rule(r, empty_recording())} - set(r.ids)
    _expect(not empty, f"rule {r.name} returned undeclared ids on an empty recording: {sorted(empty)}")
