"""The oversubscription rule: configured pools against the cores, confirmed by runtime evidence."""

from __future__ import annotations

from cpuwise.diagnose import diagnose, verdict
from cpuwise.testing.recordings import fake_recording


def test_oversubscription_needs_more_than_configured_pools() -> None:
    # numpy's default pool (= cores) in 2 workers on 2 cores: a remark, not a problem.
    rec = fake_recording("compute", worker_threads=2)
    findings = diagnose(rec)
    assert verdict(findings) == "healthy"
    over = [f for f in findings if f.id == "oversubscribed"]
    assert over and over[0].severity == "info"
    # A torch pool larger than the cgroup's cores is a misconfiguration even without contention.
    findings = diagnose(fake_recording("compute", main_threads=16))
    assert findings[0].id == "oversubscribed" and findings[0].severity == "moderate"
    assert "set_num_threads(2)" in findings[0].fix_code


def test_oversubscription_without_pool_report_needs_runtime_evidence() -> None:
    rec = fake_recording("oversubscribed")
    rec.job_info.pop("thread_pools")
    f = next(f for f in diagnose(rec) if f.id == "oversubscribed")
    assert f.severity == "moderate" and any("run queue" in e for e in f.evidence)
