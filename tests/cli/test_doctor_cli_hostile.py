"""Issue 14 (items 5 and 8): hostile arguments to `cpuwise doctor` are refused before the job starts, and
hostile `--from` files give a clear error, never a raw traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cpuwise._schema import FORMAT_VERSION
from cpuwise.cli import doctor as doctor_cli

SCRIPTS = Path(__file__).parents[1] / "e2e" / "scripts"


def app() -> typer.Typer:
    a = typer.Typer()
    doctor_cli.register(a)

    @a.callback()
    def _root() -> None:  # keep `doctor` a subcommand, as in the real app
        pass

    return a


def run_marker_job(tmp_path: Path, *options: str) -> tuple[int, str, Path]:
    marker = tmp_path / "job-ran"
    r = CliRunner().invoke(app(), ["doctor", *options, "--", sys.executable, str(SCRIPTS / "touch_marker.py"),
                                   str(marker)])
    return r.exit_code, r.output, marker


def test_out_that_is_a_file_is_refused_before_the_job_runs(tmp_path: Path) -> None:
    taken = tmp_path / "report"
    taken.write_text("my notes")
    code, output, marker = run_marker_job(tmp_path, "--out", str(taken))
    assert code == 2, output
    assert "is a file" in output.replace("\n", "") and "--out" in output
    assert not marker.exists(), "the job ran although its report could never be written"
    assert taken.read_text() == "my notes"


@pytest.mark.parametrize("where", ["under-a-file", "read-only-filesystem"])
def test_out_that_cannot_be_created_or_written_is_refused_before_the_job_runs(tmp_path: Path,
                                                                              where: str) -> None:
    if where == "under-a-file":
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "report"
    else:
        out = Path("/proc/cpuwise-report-cannot-exist")  # /proc refuses new folders, even for root
    code, output, marker = run_marker_job(tmp_path, "--out", str(out))
    assert code == 2, output
    flat = output.replace("\n", "")
    assert "cannot write the report" in flat and str(out) in flat
    assert not marker.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e-9", "0", "-1", "1e9"])
def test_an_interval_the_sampler_cannot_keep_is_refused(tmp_path: Path, value: str) -> None:
    code, output, marker = run_marker_job(tmp_path, "--out", str(tmp_path / "out"), "--interval", value)
    assert code == 2, output
    assert "--interval" in output and "between" in output
    assert not marker.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_hang_timeout_that_is_not_a_finite_number_is_refused(tmp_path: Path, value: str) -> None:
    code, output, marker = run_marker_job(tmp_path, "--out", str(tmp_path / "out"), "--hang-timeout", value)
    assert code == 2, output
    assert "--hang-timeout" in output
    assert not marker.exists()


def hostile_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "binary": bytes(range(256)) * 64,
        "deeply-nested": ("[" * 200_000 + "]" * 200_000).encode(),
        "nested-object": ('{"a":' * 100_000 + "1" + "}" * 100_000).encode(),
        "not-utf8-json": b'{"version": %d, "command": ["\xff\xfe"]}' % FORMAT_VERSION,
        "wrong-types": json.dumps({"version": FORMAT_VERSION, "command": "python", "started_at": 3,
                                   "duration_s": "x", "interval_s": [], "end_reason": None,
                                   "exit_code": "zero", "host": [], "gpu": "none"}).encode(),
        "samples-of-the-wrong-shape": json.dumps({
            "version": FORMAT_VERSION, "command": ["python"], "started_at": "2026-01-01", "duration_s": 1.0,
            "interval_s": 0.1, "end_reason": "exited", "exit_code": 0, "host": {},
            "gpu": {"available": False}, "system": [{"t": "soon"}], "processes": "all of them"}).encode(),
        "empty": b"",
    }
    out = {}
    for name, data in files.items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.mark.parametrize("name", ["binary", "deeply-nested", "nested-object", "not-utf8-json", "wrong-types",
                                  "samples-of-the-wrong-shape", "empty"])
def test_from_a_hostile_file_gives_a_clear_error_not_a_traceback(tmp_path: Path, name: str) -> None:
    path = hostile_files(tmp_path)[name]
    r = CliRunner().invoke(app(), ["doctor", "--from", str(path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, (r.output, r.exception)
    assert not isinstance(r.exception, BaseException) or isinstance(r.exception, SystemExit), r.exception
    flat = r.output.replace("\n", "")  # the console wraps long lines
    assert "cpuwise doctor:" in flat and str(path) in flat, r.output
    assert "Traceback" not in flat
