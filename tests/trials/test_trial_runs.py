"""--try-fixes trials on real short jobs: the overrides reach the job, N steps stop it, a crashing or hanging
trial is reported and ends with no process left behind. Behaviour only: no timing is asserted."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest

from cpuwise._trials import CRASHED, NOT_APPLIED, OK, TIMED_OUT, Overrides
from cpuwise.errors import ConfigError
from cpuwise.monitor.trials import absolute_args, parse_trial_env, run_trial

JOB = '''
import atexit, json, os, sys, time
import torch
from torch.utils.data import DataLoader, Dataset

OBS = os.environ["OBS"]
seen = {"getitem": 0, "batches": 0}

class Items(Dataset):
    def __len__(self): return 64
    def __getitem__(self, i):
        seen["getitem"] += 1
        return torch.full((3,), float(i)), i % 2

def save():
    with open(OBS, "a") as f:
        f.write(json.dumps(seen) + "\\n")

atexit.register(save)
torch.set_num_threads(2)   # the job's own choice: a trial's thread cap must win
loader = DataLoader(Items(), batch_size=4, shuffle=True, num_workers=0)
seen.update(loader=type(loader).__module__, num_workers=loader.num_workers, batch_size=loader.batch_size,
            persistent=getattr(loader, "persistent_workers", None), threads=torch.get_num_threads(),
            trial=os.environ.get("CPUWISE_TRIAL"), extra=os.environ.get("MY_FLAG"), cwd=os.getcwd())
if os.environ.get("CRASH_WITH_WORKERS") and loader.num_workers:
    raise RuntimeError("this job breaks with workers")
for epoch in range(1000):
    for x, y in loader:
        seen["batches"] += 1
        if os.environ.get("HANG"):
            time.sleep(3600)
'''


@pytest.fixture()
def job(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    return script, tmp_path / "obs.jsonl"


def observed(obs: Path) -> dict[str, Any]:
    return json.loads(obs.read_text().splitlines()[-1])


def no_leftovers(pids_before: set[int]) -> None:
    me = psutil.Process()
    assert [c for c in me.children(recursive=True) if c.pid not in pids_before] == []


def test_n_steps_stop_the_job_cleanly_with_its_measurement(job: tuple[Path, Path]) -> None:
    script, obs = job
    run = run_trial([sys.executable, str(script)], Overrides(steps=12, warmup=3),
                    extra_env={"OBS": str(obs), "MY_FLAG": "yes"})
    assert run.status == OK, run.reason
    assert run.measured is not None
    assert run.measured["steps"] == 12 and run.measured["stopped"]
    assert run.measured["samples"] == 12 * 4 and run.measured["batch_size"] == 4
    seen = observed(obs)  # the job's atexit ran: a clean stop
    assert seen["batches"] == 3 + 12
    assert seen["trial"] == "1" and seen["extra"] == "yes"  # CPUWISE_TRIAL and --trial-env reach the job
    assert run.rec is not None and run.rec.exit_code == 0


def test_overrides_reach_the_dataloader_and_the_thread_caps_hold(job: tuple[Path, Path]) -> None:
    script, obs = job
    ov = Overrides(num_workers=2, persistent_workers=True, batch_size=8, threads_main=1, threads_worker=1,
                   steps=5, warmup=2)
    run = run_trial([sys.executable, str(script)], ov, extra_env={"OBS": str(obs)})
    assert run.status == OK, run.reason
    seen = observed(obs)
    assert (seen["num_workers"], seen["persistent"], seen["batch_size"]) == (2, True, 8)
    assert seen["threads"] == 1  # the job's torch.set_num_threads(2) was capped
    assert run.measured is not None and run.measured["batch_size"] == 8
    loaders = run.rec.job_info["dataloaders"] if run.rec else []
    assert loaders and loaders[0]["num_workers"] == 2 and loaders[0]["persistent_workers"] is True
    workers = [p for p in run.rec.job_info["thread_pools"].values() if p.get("role") == "worker"]
    assert workers and all(p["torch_intra"] == 1 for p in workers)


def test_the_upper_bound_replays_batches_without_running_the_loader(job: tuple[Path, Path]) -> None:
    script, obs = job
    run = run_trial([sys.executable, str(script)], Overrides(replay=3, steps=40, warmup=3),
                    extra_env={"OBS": str(obs)})
    assert run.status == OK, run.reason
    seen = observed(obs)
    assert seen["batches"] == 43  # 40 measured steps over several epochs of 16 batches
    assert seen["getitem"] == 3 * 4  # only the 3 kept batches were ever loaded


def test_cpuwise_data_takes_a_plain_map_style_datasets_loader(job: tuple[Path, Path]) -> None:
    script, obs = job
    run = run_trial([sys.executable, str(script)], Overrides(cpuwise_data=True, steps=5, warmup=2),
                    extra_env={"OBS": str(obs)})
    assert run.status == OK, run.reason
    assert observed(obs)["loader"].startswith("cpuwise.data")
    assert run.measured is not None and run.measured["source"] == "cpuwise.data"


def test_a_drop_in_that_does_not_apply_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "iterable.py"
    script.write_text("import torch\nfrom torch.utils.data import DataLoader, IterableDataset\n"
                      "class S(IterableDataset):\n    def __iter__(self):\n"
                      "        while True: yield torch.zeros(2)\n"
                      "for x in DataLoader(S(), batch_size=2): pass\n")
    run = run_trial([sys.executable, str(script)], Overrides(cpuwise_data=True, steps=5, warmup=2))
    assert run.status == NOT_APPLIED


def test_a_crashing_trial_is_reported_with_its_reason(job: tuple[Path, Path]) -> None:
    script, obs = job
    run = run_trial([sys.executable, str(script)], Overrides(num_workers=2, steps=5),
                    extra_env={"OBS": str(obs), "CRASH_WITH_WORKERS": "1"})
    assert run.status == CRASHED
    assert "this job breaks with workers" in run.reason


def test_a_hanging_trial_is_ended_after_its_timeout(job: tuple[Path, Path]) -> None:
    script, obs = job
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    run = run_trial([sys.executable, str(script)], Overrides(num_workers=1, steps=50, warmup=1),
                    extra_env={"OBS": str(obs), "HANG": "1"}, timeout=6.0)
    assert run.status == TIMED_OUT
    assert "time limit" in run.reason
    no_leftovers(before)


def test_a_temporary_working_directory_is_used_and_removed(job: tuple[Path, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    script, obs = job
    monkeypatch.chdir(tmp_path)
    before = set(os.listdir(tempfile.gettempdir()))
    run = run_trial([sys.executable, "job.py"], Overrides(steps=3, warmup=1), extra_env={"OBS": str(obs)},
                    temp_cwd=True)
    assert run.status == OK, run.reason
    cwd = observed(obs)["cwd"]
    assert Path(cwd).name.startswith("cpuwise-trial-")
    assert not Path(cwd).exists()
    assert {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("cpuwise-")} == set()


def test_relative_paths_become_absolute_for_a_trial_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    argv = absolute_args(["python", "train.py", "--epochs", "2", "missing.txt"], tmp_path)
    assert argv == ["python", str((tmp_path / "train.py").resolve()), "--epochs", "2", "missing.txt"]


def test_trial_env_pairs_are_checked() -> None:
    pairs = parse_trial_env(["A=1", "WANDB_MODE=disabled", "E="])
    assert pairs == {"A": "1", "WANDB_MODE": "disabled", "E": ""}
    for bad in ("NOEQUALS", "=x", "1A=2", "A-B=3"):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_trial_env([bad])
