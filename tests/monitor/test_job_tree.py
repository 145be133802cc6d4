"""Issue 14 item 8: the doctor sees and ends every descendant of the job, also those that double-fork
or start a new session, and the job does not outlive a doctor that is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from cpuwise.monitor.backends import NoGpu
from cpuwise.monitor.runner import run_job

SCRIPTS = Path(__file__).parents[1] / "e2e" / "scripts"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(predicate, deadline_s: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll `predicate` until it holds or the deadline passes (a bound on waiting, not a timing claim)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def test_a_double_forked_grandchild_is_sampled(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    rec = run_job([sys.executable, str(SCRIPTS / "double_fork.py"), str(pid_file)], gpu=NoGpu("test"))
    grandchild = int(pid_file.read_text())
    try:
        sampled = {p.pid for p in rec.processes}
        assert grandchild in sampled, f"the orphaned grandchild {grandchild} was never sampled: {sampled}"
        assert any(p.pid == grandchild and p.cpu_percent > 0 for p in rec.processes)
    finally:
        kill_quietly(grandchild)


def test_a_child_in_its_own_session_does_not_outlive_the_job(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper"
    rec = run_job([sys.executable, str(SCRIPTS / "setsid_child.py"), str(pid_file)], gpu=NoGpu("test"))
    helper = int(pid_file.read_text())
    try:
        assert rec.exit_code == 0
        assert not alive(helper), "the helper that called setsid outlived the doctor"
        assert not psutil.pid_exists(helper), "the helper was ended but left as a zombie"
    finally:
        kill_quietly(helper)


def test_the_job_does_not_outlive_a_sigkilled_doctor(tmp_path: Path) -> None:
    pid_file = tmp_path / "job"
    # a SIGKILLed doctor cannot remove its scratch folder: it makes it under tmp_path (TMPDIR), not /tmp
    doctor = subprocess.Popen([sys.executable, "-m", "cpuwise.cli.doctor", "--out", str(tmp_path / "out"),
                               "--", sys.executable, str(SCRIPTS / "sleeper.py"), str(pid_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "TMPDIR": str(tmp_path)})
    job = 0
    try:
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 60.0)
        job = int(pid_file.read_text())
        assert alive(job)
        doctor.kill()
        doctor.wait()
        assert wait_for(lambda: not alive(job)), "the job kept running after the doctor was SIGKILLed"
    finally:
        doctor.kill()
        doctor.wait()
        if job:
            kill_quietly(job)
