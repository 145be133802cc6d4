"""End to end: real scripts under the doctor get the right verdict; crash, interrupt and hang still
produce a report and pass the exit code through."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cpuwise.diagnose import diagnose
from cpuwise.monitor.backends import NoGpu
from cpuwise.monitor.runner import run_job
from cpuwise.testing.verdicts import accepted

SCRIPTS = Path(__file__).parent / "scripts"
INPUT_BOUND = {"input_bound", "input_bound_cpu_saturated", "too_few_workers", "io_bound"}


def doctor(script: str, *args: str, **kw: object) -> tuple[object, list[str]]:
    rec = run_job([sys.executable, str(SCRIPTS / script), *args], gpu=NoGpu("no GPU in tests"), **kw)  # type: ignore[arg-type]
    findings = diagnose(rec)
    return rec, [f.id for f in findings]


def doctor_cli(out: Path, *cmd: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cpuwise.cli.doctor", "--out", str(out), "--json", "--",
                             *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_input_bound_script_is_diagnosed_input_bound() -> None:
    rec, ids = doctor("input_bound.py", "2")
    assert rec.end_reason == "exited" and rec.exit_code == 0  # type: ignore[attr-defined]
    ok, why = accepted(rec, diagnose(rec), expected=INPUT_BOUND)  # type: ignore[arg-type]
    assert ok, why


@pytest.mark.slow
def test_compute_bound_script_is_healthy() -> None:
    rec, ids = doctor("compute_bound.py", "2")
    ok, why = accepted(rec, diagnose(rec), expected={"healthy"}, wrong=INPUT_BOUND)  # type: ignore[arg-type]
    assert ok, why


@pytest.mark.slow
def test_oversubscribed_script_is_diagnosed_oversubscribed() -> None:
    rec, ids = doctor("oversubscribed.py", "2")
    assert "oversubscribed" in ids, ids


@pytest.mark.slow
def test_crash_writes_the_report_and_passes_the_exit_code(tmp_path: Path) -> None:
    p = doctor_cli(tmp_path, sys.executable, str(SCRIPTS / "crash.py"))
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1, stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["recording"]["end_reason"] == "crashed"
    assert "boom at step 3" in report["recording"]["job_info"]["python_exception"]
    assert json.loads(stdout)["findings"][0]["id"] == "crashed"


@pytest.mark.slow
def test_sigint_to_the_doctor_stops_the_job_and_still_writes_the_report(tmp_path: Path) -> None:
    marker = tmp_path / "running"
    p = doctor_cli(tmp_path / "out", sys.executable, str(SCRIPTS / "forever.py"), str(marker))
    deadline = time.monotonic() + 90

    def steps() -> int:
        try:
            return int(marker.read_text() or 0)
        except (OSError, ValueError):
            return 0

    # Wait for a few whole steps (a bound on waiting, not a timing claim): one step is two deliveries.
    while steps() < 5 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert steps() >= 5, p.communicate()[1]
    os.kill(p.pid, signal.SIGINT)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr  # the job died of the SIGINT: 128 + 2
    rec = json.loads((tmp_path / "out" / "report.json").read_text())["recording"]
    assert rec["end_reason"] == "interrupted" and rec["steps"]


def test_hang_is_detected_and_every_process_stack_is_dumped() -> None:
    rec, ids = doctor("hang.py", hang_timeout=1.0)
    assert rec.end_reason == "hung"  # type: ignore[attr-defined]
    stacks = rec.stacks  # type: ignore[attr-defined]
    assert len(stacks) == 1 and "hang.py" in next(iter(stacks.values()))
    assert ids[0] == "hung"


def test_command_not_found_exits_127_with_a_clear_message(tmp_path: Path) -> None:
    p = doctor_cli(tmp_path, "no-such-command-cpuwise")
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 127 and "cannot run 'no-such-command-cpuwise'" in stderr
    assert not (tmp_path / "report.json").exists()


def test_without_py_spy_the_faulthandler_signal_dumps_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    import cpuwise.monitor.stacks as stacks_mod

    monkeypatch.setattr(stacks_mod, "find_py_spy", lambda: None)
    rec, ids = doctor("hang.py", hang_timeout=1.0)
    text = next(iter(rec.stacks.values()))  # type: ignore[attr-defined]
    assert rec.end_reason == "hung" and text.startswith("faulthandler:")  # type: ignore[attr-defined]
    assert "hang.py" in text and "line 14" in text


@pytest.mark.gpu
def test_cuda_job_gets_gpu_samples_and_sync_time() -> None:
    rec = run_job([sys.executable, str(SCRIPTS / "cuda_sync.py"), "3"])
    assert rec.end_reason == "exited" and rec.gpu.available, rec.gpu.reason
    assert rec.gpus and any(g.util_percent for g in rec.gpus)
    assert sum(lane.sync_s for lane in rec.step_lanes) > 0  # .item() on a CUDA tensor was timed as sync


@pytest.mark.slow
def test_hung_dataloader_worker_gets_its_stack_dumped_with_the_main_one() -> None:
    rec, ids = doctor("hang_worker.py", hang_timeout=1.5)
    assert rec.end_reason == "hung" and ids[0] == "hung"  # type: ignore[attr-defined]
    roles = {str(p.pid): p.role for p in rec.processes}  # type: ignore[attr-defined]
    by_role = {roles.get(pid): text for pid, text in rec.stacks.items()}  # type: ignore[attr-defined]
    assert "__getitem__" in by_role["worker"] and "hang_worker.py" in by_role["main"]
