"""The runner without torch: command resolution, exit codes passed through, no leftovers."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from cpuwise.errors import CommandNotFoundError
from cpuwise.monitor.backends import NoGpu
from cpuwise.monitor.runner import exit_code_of, is_python_command, resolve_command, run_job

SCRIPTS = Path(__file__).parents[1] / "e2e" / "scripts"


def test_missing_program_raises_a_clear_error() -> None:
    with pytest.raises(CommandNotFoundError, match="cannot run 'no-such-program-xyz'.*PATH"):
        resolve_command(["no-such-program-xyz", "--flag"])
    with pytest.raises(CommandNotFoundError, match="expected a command"):
        resolve_command([])
    with pytest.raises(CommandNotFoundError, match="cannot run './missing.py'"):
        run_job(["./missing.py"], gpu=NoGpu("test"))


def test_non_executable_script_runs_with_this_python(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    assert resolve_command([str(script), "-x"]) == [sys.executable, str(script), "-x"]
    data = tmp_path / "data.bin"
    data.write_text("")
    with pytest.raises(CommandNotFoundError, match="not executable"):
        resolve_command([str(data)])


@pytest.mark.parametrize("argv, expected", [
    (["python", "t.py"], True), (["python3.11", "-m", "x"], True), (["/usr/bin/python3"], True),
    (["t.py"], True), (["ls", "-l"], False), ([], False),
])
def test_python_commands_are_recognised(argv: list[str], expected: bool) -> None:
    assert is_python_command(argv) is expected


def test_shebang_scripts_count_as_python(tmp_path: Path) -> None:
    tool = tmp_path / "torchrun-like"
    tool.write_text("#!/usr/bin/env python3\nprint(1)\n")
    tool.chmod(0o755)
    assert is_python_command([str(tool)])


def test_exit_code_convention() -> None:
    assert exit_code_of(0) == 0 and exit_code_of(3) == 3 and exit_code_of(-signal.SIGKILL) == 137


def test_exit_code_is_passed_through_and_the_job_is_instrumented() -> None:
    rec = run_job([sys.executable, str(SCRIPTS / "plain_exit.py"), "3"], gpu=NoGpu("no GPU in test"))
    assert rec.exit_code == 3 and rec.end_reason == "exited"
    assert rec.job_info["instrumented"] is True and rec.job_info["python_command"] is True
    assert rec.gpu.reason == "no GPU in test" and rec.steps == []


def test_non_python_command_and_a_signal_death_is_a_crash() -> None:
    rec = run_job(["sh", "-c", "kill -9 $$"], gpu=NoGpu("x"))
    assert rec.end_reason == "crashed" and rec.exit_code == 137
    assert rec.job_info["python_command"] is False


def test_orphaned_grandchildren_are_ended() -> None:
    code = "import subprocess, sys; p = subprocess.Popen(['sleep', '60']); print(p.pid, flush=True)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sys, cpuwise.monitor.runner as r, "
                          "cpuwise.monitor.backends as b; rec = r.run_job([sys.executable, '-c', "
                          f"{code!r}], gpu=b.NoGpu('x')); print('rc', rec.exit_code)"],
                         capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.split()[0])
    assert out.stdout.split()[-2:] == ["rc", "0"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert os.getpid() != pid


def test_a_python_job_without_the_instrumentation_is_noted() -> None:
    rec = run_job([sys.executable, "-I", "-c", "pass"], gpu=NoGpu("x"))  # -I: no PYTHONPATH, no site
    assert rec.job_info["instrumented"] is False
    assert any("never loaded cpuwise's instrumentation" in n for n in rec.notes)
