"""Judging a doctor verdict in a test that runs a real job on a shared machine.

Another process on the machine legitimately changes what the doctor must say: when the recording
shows processes outside the job using a substantial share of the cores (OTHERS_SHARE), "cpu_contention"
is the correct primary verdict, so it is accepted beside the expected ones. Wrong verdicts never are.

    ok, why = accepted(rec, findings, expected={"too_few_workers"}, wrong={"io_bound"})
    assert ok, why
"""

from __future__ import annotations

from collections.abc import Collection

from cpuwise._schema import Recording
from cpuwise.diagnose import thresholds as th
from cpuwise.diagnose.findings import Finding
from cpuwise.diagnose.metrics import measure


def others_share(rec: Recording) -> float:
    """The share of the usable cores that processes outside the job kept busy (the recording's own
    measurement: the machine's busy cores minus the job's)."""
    m = measure(rec)
    return m.others_cores / max(1, m.usable_cores)


def accepted(rec: Recording, findings: list[Finding], *, expected: Collection[str],
             wrong: Collection[str] = ()) -> tuple[bool, str]:
    """Whether the primary finding is an expected verdict (or cpu_contention under competition) and no
    finding is a wrong one; the reason when not."""
    ids = [f.id for f in findings]
    bad = sorted(set(ids) & set(wrong))
    if bad:
        return False, f"wrong verdict(s) {bad} among {ids}"
    primary = ids[0] if ids else "insufficient_data"
    if primary in expected:
        return True, ""
    share = others_share(rec)
    if primary == "cpu_contention" and share >= th.OTHERS_SHARE:
        return True, ""
    return False, (f"primary verdict {primary!r}, expected one of {sorted(expected)}; all: {ids}; other "
                   f"processes used {share:.0%} of the cores")
