"""`cpuwise doctor` as a command: re-diagnose a saved recording, JSON output, errors and exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cpuwise._schema import GpuStatus, Recording, StepRecord
from cpuwise.cli import doctor as doctor_cli

SCRIPTS = Path(__file__).parents[1] / "e2e" / "scripts"


def app() -> typer.Typer:
    a = typer.Typer()
    doctor_cli.register(a)

    @a.callback()
    def _root() -> None:  # keep `doctor` a subcommand, as in the real app
        pass

    return a


def input_bound_recording() -> Recording:
    steps = [StepRecord(index=i, t_start=i * 0.1, data_wait_s=0.07, compute_s=0.03) for i in range(40)]
    return Recording(command=["python", "train.py"], started_at="2026-11-22T00:00:00+00:00", duration_s=4.0,
                     interval_s=0.1, end_reason="exited", exit_code=0, host={"usable_cores": 2},
                     gpu=GpuStatus(available=False, reason="no GPU"), steps=steps,
                     job_info={"instrumented": True, "step_source": "dataloader", "thread_pools": {},
                               "dataloaders": [], "python_exception": None})


def test_from_rediagnoses_a_saved_recording_without_running_anything(tmp_path: Path) -> None:
    saved = input_bound_recording().save(tmp_path / "recording.json")
    out = tmp_path / "out"
    r = CliRunner().invoke(app(), ["doctor", "--from", str(saved), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["findings"][0]["id"].startswith("input_bound") or result["findings"][0]["id"] in (
        "too_few_workers", "io_bound")
    assert (out / "report.html").is_file() and (out / "report.json").is_file()


def test_from_a_bad_file_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    r = CliRunner().invoke(app(), ["doctor", "--from", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "expected a JSON object" in r.output


def test_not_found_exits_127(tmp_path: Path) -> None:
    r = CliRunner().invoke(app(), ["doctor", "--out", str(tmp_path), "--", "no-such-cmd-xyz", "--flag"])
    assert r.exit_code == 127 and "cannot run 'no-such-cmd-xyz'" in r.output


def test_job_exit_code_and_its_own_flags_pass_through(tmp_path: Path) -> None:
    r = CliRunner().invoke(app(), ["doctor", "--out", str(tmp_path), "--json", "--",
                                   sys.executable, str(SCRIPTS / "plain_exit.py"), "4"])
    assert r.exit_code == 4
    assert json.loads((tmp_path / "report.json").read_text())["recording"]["exit_code"] == 4


def test_bad_interval_is_a_config_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(app(), ["doctor", "--interval", "0", "--", "true"])
    assert r.exit_code == 2 and "--interval must be a number of seconds between" in r.output


def test_negative_hang_timeout_is_a_config_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(app(), ["doctor", "--hang-timeout", "-1", "--", "true"])
    assert r.exit_code == 2 and "--hang-timeout must be a finite number of seconds >= 0" in r.output


def test_a_report_measures_the_recording_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The rules, the HTML report and the terminal summary read one Metrics (every measure() sanitizes).
    from cpuwise.diagnose import metrics

    calls: list[int] = []
    sanitize = metrics.sanitize
    monkeypatch.setattr(metrics, "sanitize", lambda rec: calls.append(1) or sanitize(rec))
    r = CliRunner().invoke(app(), ["doctor", "--from", str(input_bound_recording().save(tmp_path / "r.json")),
                                   "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert len(calls) == 1
