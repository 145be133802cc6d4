"""The job-side bootstrap: post-import patching, sitecustomize chaining, DataLoader steps and pools."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cpuwise import _channel as channel
from cpuwise.monitor.events import ChannelReader, JobState
from cpuwise.monitor.instrument import BOOT_DIR, STACK_DIR_ENV
from cpuwise.monitor.instrument.hooks import PostImportFinder


def test_post_import_finder_runs_the_callback_after_the_module_body(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cw_target_mod.py").write_text("VALUE = 41\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[int] = []

    def cb(mod: object) -> None:
        seen.append(mod.VALUE)  # type: ignore[attr-defined]
        mod.VALUE += 1  # type: ignore[attr-defined]

    finder = PostImportFinder({"cw_target_mod": cb})
    sys.meta_path.insert(0, finder)
    try:
        import cw_target_mod  # type: ignore[import-not-found]

        assert seen == [41] and cw_target_mod.VALUE == 42
        import json  # other modules are untouched

        assert json.dumps(1) == "1"
    finally:
        sys.meta_path.remove(finder)
        sys.modules.pop("cw_target_mod", None)


def run_instrumented(tmp_path: Path, code: str,
                     extra_path: str = "") -> tuple[subprocess.CompletedProcess[str], JobState]:
    chan = tmp_path / "channel.jsonl"
    env = dict(os.environ, **{channel.ENV_VAR: str(chan), STACK_DIR_ENV: str(tmp_path)})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BOOT_DIR), extra_path) if p)
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(code))
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    st = JobState()
    st.ingest(ChannelReader(chan).read_new())
    return out, st


def test_bootstrap_says_hello_reports_exceptions_and_chains_the_environments_sitecustomize(
        tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['CW_CHAINED'] = '1'\n")
    out, st = run_instrumented(tmp_path, """
        import os, sys
        assert 'torch' not in sys.modules  # the bootstrap loads nothing heavy
        print(os.environ.get('CW_CHAINED'))
        raise KeyError('cw-boom')
        """, extra_path=str(other))
    assert out.returncode == 1 and out.stdout.strip() == "1"
    assert st.job_info["instrumented"] and len(st.faulthandler_pids) == 1
    assert "KeyError: 'cw-boom'" in st.job_info["python_exception"]


@pytest.mark.slow
def test_dataloader_steps_settings_and_worker_pools_with_spawned_workers(tmp_path: Path) -> None:
    out, st = run_instrumented(tmp_path, """
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        def init(worker_id):
            torch.set_num_threads(3)

        if __name__ == '__main__':
            dl = DataLoader(TensorDataset(torch.arange(40.0)), batch_size=4, num_workers=1,
                            worker_init_fn=init, multiprocessing_context='spawn', pin_memory=False)
            n = sum(1 for _ in dl)
            print(n)
        """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "10"
    (lane,), _ = st.steps.lanes()
    assert lane.n == 10 and lane.epoch_starts == 1  # the StopIteration call closes the last step
    (loader,) = st.job_info["dataloaders"]
    keys = ("num_workers", "batch_size", "pin_memory", "persistent_workers", "prefetch_factor")
    assert {k: loader[k] for k in keys} == {"num_workers": 1, "batch_size": 4, "pin_memory": False,
                                            "persistent_workers": False, "prefetch_factor": 2}
    pools = st.job_info["thread_pools"].values()
    workers = [p for p in pools if p["role"] == "worker"]
    assert len(workers) == 1 and all(p["torch_intra"] == 3 for p in workers)  # after the user's init
    assert [p["role"] for p in pools].count("main") == 1


class FakeTensor:
    def __init__(self, is_cuda: bool) -> None:
        self.is_cuda = is_cuda

    def item(self) -> int:
        import time

        time.sleep(0.02)
        return 7


@pytest.mark.parametrize("is_cuda, compiling, timed", [(True, False, True), (False, False, False),
                                                       (True, True, False)])
def test_sync_wrapper_times_only_cuda_tensors_outside_compilation(
        tmp_path: Path, is_cuda: bool, compiling: bool, timed: bool) -> None:
    from cpuwise.monitor.instrument.torch_patches import _timed

    channel.set_path(str(tmp_path / "c.jsonl"))
    try:
        channel.note_next(0.0, 0.0, source="dataloader")
        item = _timed(FakeTensor.item, lambda: compiling)
        assert item(FakeTensor(is_cuda)) == 7
        channel.note_next(1.0, 1.0, source="dataloader")
    finally:
        channel.set_path(None)
    st = JobState()
    st.ingest(ChannelReader(tmp_path / "c.jsonl").read_new())
    (step,) = st.steps.lanes()[1]
    assert (step.sync_s >= 0.015) is timed
