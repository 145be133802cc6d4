"""Fixes in the idiom of the job's framework, and the classes this machine cannot run, on synthetic
recordings: per-rank GPUs (NVML's process list), a container CPU quota, tf.data (no TensorFlow here)."""

from __future__ import annotations

import pytest

from cpuwise.diagnose import diagnose
from cpuwise.diagnose.idioms import idiom_of, loader_code
from cpuwise.diagnose.metrics import measure
from cpuwise.testing.recordings import fake_recording

TOO_FEW = {"cores": 4, "workers": 1, "main_cpu": 0.3, "worker_cpu": 0.97}


@pytest.mark.parametrize("framework, fragments", [
    (None, ("torch.utils.data.DataLoader(", "num_workers=3", "persistent_workers=True")),
    ({"name": "lightning", "loader_from": "datamodule", "owner": "PhotoData"},
     ("class PhotoData(pl.LightningDataModule)", "def train_dataloader(self)", "num_workers=3")),
    ({"name": "lightning", "loader_from": "module", "owner": "Net"},
     ("class Net(pl.LightningModule)", "def train_dataloader(self)", "num_workers=3")),
    ({"name": "lightning", "loader_from": "fit"}, ("trainer.fit(model, train_loader)", "num_workers=3")),
    ({"name": "hf", "dataloader_num_workers": 0},
     ("TrainingArguments(", "dataloader_num_workers=3", "dataloader_prefetch_factor=4",
      "dataloader_persistent_workers=True")),
    ({"name": "keras", "data": "PyDataset", "class": "Photos", "workers": 1, "use_multiprocessing": False},
     ("class Photos(keras.utils.PyDataset)", "workers=3", "use_multiprocessing=True")),
    ({"name": "keras", "data": "tf.data"},
     ("num_parallel_calls=tf.data.AUTOTUNE", ".prefetch(tf.data.AUTOTUNE)")),
])
def test_the_too_few_workers_fix_is_written_for_the_jobs_framework(
        framework: dict[str, object] | None, fragments: tuple[str, ...]) -> None:
    rec = fake_recording("too_few_workers", framework=framework)
    f = diagnose(rec)[0]
    assert f.id == "too_few_workers"
    for fragment in fragments:
        assert fragment in f.fix_code, (fragment, f.fix_code)
    if framework and framework["name"] == "hf":
        assert "dataloader_num_workers to 3" in f.fix


def test_worker_startup_fix_is_persistent_workers_in_the_trainer_arguments() -> None:
    rec = fake_recording("worker_startup", framework={"name": "hf"})
    f = next(f for f in diagnose(rec) if f.id == "worker_startup")
    assert "dataloader_persistent_workers=True" in f.fix_code and "dataloader_persistent_workers" in f.fix


def test_a_cpuwise_data_job_and_a_hand_written_loop_get_their_own_idiom() -> None:
    assert idiom_of(fake_recording("pipeline")).name == "cpuwise.data"
    rec = fake_recording("input_bound")
    rec.job_info["step_source"], rec.job_info["dataloaders"] = "watch", []
    assert idiom_of(rec).name == "loop" and "IterableDataset" in loader_code(rec, workers=2)


def test_each_rank_gets_its_gpu_from_nvmls_process_list() -> None:
    rec = fake_recording("straggler", gpu=True)
    for g in list(rec.gpus):
        g.process_mem_bytes = {"1100": 1 << 30}
        rec.gpus.append(type(g)(**{**g.__dict__, "index": 1, "process_mem_bytes": {"1101": 1 << 30}}))
    m = measure(rec)
    assert {r.rank: r.gpu for r in m.ranks} == {0: 0, 1: 1}


def test_without_nvml_processes_a_ranks_gpu_is_its_local_rank() -> None:
    rec = fake_recording("ddp", gpu=True)
    for g in rec.gpus:
        g.process_mem_bytes = {}
    assert {r.rank: r.gpu for r in measure(rec).ranks} == {0: 0, 1: 1}


def test_a_container_quota_below_the_visible_cores_is_named_in_the_oversubscription() -> None:
    f = diagnose(fake_recording("quota"))[0]
    assert f.id == "oversubscribed" and f.severity == "high"
    assert any("CPU quota 2 cores" in e and "of 16 visible" in e for e in f.evidence), f.evidence
    assert "torch.set_num_threads(2)" in f.fix_code


def test_a_dead_rank_keeps_the_others_findings_and_says_how_each_ended() -> None:
    rec = fake_recording("ddp", end_reason="crashed", exit_code=1)
    rec.job_info["exceptions"] = {"1101": "Traceback ...\nRuntimeError: rank 1: corrupt record"}
    rec.job_info["exited"] = []
    findings = diagnose(rec)
    assert findings[0].id == "crashed" and findings[0].summary.startswith("Rank 1 crashed (RuntimeError")
    assert any("rank 0 (pid 1100): running at the end" in e for e in findings[0].evidence)
    assert "input_bound_cpu_saturated" in [f.id for f in findings]  # rank 0's data still diagnosed
