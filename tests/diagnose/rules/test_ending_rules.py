"""The rules on how a job ended: hung (and where it waits), crashed (and why)."""

from __future__ import annotations

from cpuwise.diagnose import diagnose
from cpuwise.testing.recordings import fake_recording


def test_hung_names_openmp_before_fork_only_when_stacks_show_it() -> None:
    f = diagnose(fake_recording("hung"))[0]
    assert f.id == "hung" and "OpenMP" in f.title and "forkserver" in f.fix_code
    assert any("no progress" in e for e in f.evidence)
    plain = diagnose(fake_recording("hung", stacks={"1000": "Thread 1\n    wait (threading.py:320)\n"}))[0]
    assert plain.id == "hung" and "OpenMP" not in plain.title
    assert any("threading.py:320" in e for e in plain.evidence)


def test_crashed_quotes_the_exception_and_leads() -> None:
    findings = diagnose(fake_recording("crashed"))
    assert findings[0].id == "crashed"
    assert "RuntimeError: mat1 and mat2" in findings[0].summary
    killed = fake_recording("crashed", exit_code=-9, exception=None)
    assert "SIGKILL" in diagnose(killed)[0].summary
