"""`cpuwise doctor --try-fixes` as a command: bad flags are refused before anything runs; a whole short
run writes the trials table to report.json / report.html, skipping a trial that crashes."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from cpuwise._trials import CRASHED, OK, Overrides
from cpuwise.cli import doctor as doctor_cli
from cpuwise.cli import try_fixes
from cpuwise.diagnose.trials import AS_IS, FIX, UPPER, Trial

JOB = '''
import os, torch
from torch.utils.data import DataLoader, Dataset

class Items(Dataset):
    def __len__(self): return 64
    def __getitem__(self, i):
        return torch.full((3,), float(i)), i % 2

loader = DataLoader(Items(), batch_size=4, num_workers=0)
if os.environ.get("CRASH_WITH_WORKERS") and loader.num_workers:
    raise RuntimeError("this job breaks with workers")
model = torch.nn.Linear(3, 2)
for epoch in range(1000):
    for x, y in loader:
        torch.nn.functional.cross_entropy(model(x), y).backward()
'''


def app() -> typer.Typer:
    a = typer.Typer()
    doctor_cli.register(a)

    @a.callback()
    def _root() -> None:  # keep `doctor` a subcommand, as in the real app
        pass

    return a


@pytest.mark.parametrize("args, says", [
    (["--try-fixes", "--steps", "0"], "--steps must be an integer >= 1"),
    (["--steps", "10"], "only apply to --try-fixes"),
    (["--trial-cwd"], "only apply to --try-fixes"),
    (["--try-fixes", "--trial-env", "NOPE"], "KEY=VALUE"),
    (["--try-fixes", "--repeats", "0"], "--repeats must be between 1 and 9"),
    (["--try-fixes", "--trial-timeout", "-1"], "--trial-timeout must be"),
    (["--try-fixes", "--from", "x.json"], "cannot be combined with --from"),
])
def test_bad_flags_are_refused_with_the_fix(tmp_path: Path, args: list[str], says: str) -> None:
    result = CliRunner().invoke(app(), ["doctor", "--out", str(tmp_path / "r"), *args, "--",
                                        sys.executable, "-c", "print(1)"])
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_a_short_try_fixes_writes_the_table_and_skips_a_crashing_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "job.py"
    script.write_text(JOB)

    def fixed_plan(rec: Any, findings: Any, *, steps: int, warmup: int = 5, **_: Any) -> list[Trial]:
        # whatever the verdict on a busy machine: one fix that crashes, one that runs
        return [Trial(AS_IS, Overrides(steps=steps, warmup=warmup), AS_IS),
                Trial(UPPER, Overrides(replay=2, steps=steps, warmup=warmup), UPPER),
                Trial("num_workers=2", Overrides(num_workers=2, steps=steps, warmup=warmup), FIX),
                Trial("batch_size=8", Overrides(batch_size=8, steps=steps, warmup=warmup), FIX)]

    monkeypatch.setattr(try_fixes, "plan", fixed_plan)
    monkeypatch.setattr(try_fixes, "PROBE_S", 1.0)
    out = tmp_path / "report"
    console = io.StringIO()
    code = try_fixes.run_try_fixes([sys.executable, str(script)], out,
                                   try_fixes.TrialOptions(steps=15, trial_env={"CRASH_WITH_WORKERS": "1"}),
                                   Console(file=console, width=100))
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    trials = {t["change"]: t for t in report["trials"]}
    assert set(trials) >= {AS_IS, UPPER, "num_workers=2", "batch_size=8"}
    assert trials["num_workers=2"]["status"] == CRASHED
    assert "this job breaks with workers" in trials["num_workers=2"]["reason"]
    for name in (AS_IS, UPPER, "batch_size=8"):
        assert trials[name]["status"] == OK and trials[name]["samples_per_s"] > 0
        assert trials[name]["steps"] == 15
    assert trials[AS_IS]["speedup"] == 1.0
    assert report["try_fixes"]["steps"] == 15
    html = (out / "report.html").read_text()
    assert "Measured what-ifs" in html and "share of upper bound" in html
    assert "batch_size=8" in console.getvalue() and "measured what-ifs" in console.getvalue()
