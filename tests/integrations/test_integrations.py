"""Framework callbacks and rank reports, attached by the job's bootstrap as under `cpuwise doctor`:
real Lightning, Hugging Face Trainer (with accelerate), Keras 3 (torch backend) and torch DDP (gloo)
on tiny CPU jobs."""

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


def run_instrumented(tmp_path: Path, code: str) -> tuple[subprocess.CompletedProcess[str], JobState]:
    chan = tmp_path / "channel.jsonl"
    env = dict(os.environ, **{channel.ENV_VAR: str(chan), STACK_DIR_ENV: str(tmp_path)})
    env["KERAS_BACKEND"] = "torch"
    env["PYTHONPATH"] = str(BOOT_DIR)
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(code))
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240,
                         cwd=tmp_path)
    st = JobState()
    st.ingest(ChannelReader(chan).read_new())
    return out, st


@pytest.mark.slow
def test_lightning_steps_come_from_the_auto_attached_callback(tmp_path: Path) -> None:
    out, st = run_instrumented(tmp_path, """
        import pytorch_lightning as pl, torch
        from torch.utils.data import DataLoader, TensorDataset

        class Data(pl.LightningDataModule):
            def train_dataloader(self):
                return DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), batch_size=8)

        class M(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.l = torch.nn.Linear(4, 2)
            def training_step(self, batch, i):
                x, y = batch
                return torch.nn.functional.cross_entropy(self.l(x), y)
            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        pl.Trainer(max_epochs=2, accelerator="cpu", enable_progress_bar=False, logger=False,
                   enable_checkpointing=False, enable_model_summary=False).fit(M(), datamodule=Data())
        """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert st.steps.source() == "lightning"
    (lane,), _ = st.steps.lanes()
    assert lane.n == 16 and lane.epoch_starts == 2  # 8 batches x 2 epochs, every step closed
    fw = st.job_info["framework"]
    assert fw["name"] == "lightning" and fw["loader_from"] == "datamodule" and fw["owner"] == "Data"
    assert fw["num_workers"] == 0


@pytest.mark.slow
def test_hf_trainer_steps_come_from_the_auto_attached_callback(tmp_path: Path) -> None:
    out, st = run_instrumented(tmp_path, """
        import torch
        from torch.utils.data import Dataset
        from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

        class Data(Dataset):
            def __len__(self):
                return 48
            def __getitem__(self, i):
                return {"input_ids": torch.randint(0, 50, (8,)), "labels": torch.tensor(i % 2)}

        cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=16, num_labels=2)
        args = TrainingArguments(output_dir="out", per_device_train_batch_size=8, num_train_epochs=2,
                                 save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
                                 dataloader_num_workers=0)
        Trainer(model=BertForSequenceClassification(cfg), args=args, train_dataset=Data()).train()
        """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert st.steps.source() == "hf"
    (lane,), _ = st.steps.lanes()
    assert lane.n == 12  # 6 optimizer steps x 2 epochs
    fw = st.job_info["framework"]
    assert fw["name"] == "hf" and fw["dataloader_num_workers"] == 0 and fw["per_device_train_batch_size"] == 8


@pytest.mark.slow
def test_keras_fit_on_a_pydataset_is_timed_and_described(tmp_path: Path) -> None:
    out, st = run_instrumented(tmp_path, """
        import keras, numpy as np

        class Batches(keras.utils.PyDataset):
            def __init__(self):
                super().__init__(workers=1, use_multiprocessing=False)
            def __len__(self):
                return 5
            def __getitem__(self, i):
                return np.random.rand(8, 4).astype("float32"), np.arange(8) % 2

        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(Batches(), epochs=3, verbose=0)
        """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert st.steps.source() == "keras"
    (lane,), _ = st.steps.lanes()
    assert lane.n == 15 and lane.epoch_starts == 3
    fw = st.job_info["framework"]
    assert fw["name"] == "keras" and fw["backend"] == "torch"
    assert fw["data"] == "PyDataset" and fw["workers"] == 1 and fw["use_multiprocessing"] is False


DDP = """
import os, sys, time
import torch, torch.distributed as dist, torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset

def run(rank, world, crash_rank):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = DistributedDataParallel(torch.nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for i, (x,) in enumerate(DataLoader(TensorDataset(torch.randn(80, 4)), batch_size=8)):
        model(x).sum().backward()
        opt.step()
        if rank == 1:
            time.sleep(0.05)  # rank 1 is slow: rank 0 waits for it in the all_reduce below
        flag = torch.zeros(1)
        dist.all_reduce(flag)
        if rank == crash_rank and i == 5:
            raise ZeroDivisionError("rank 1 failed on batch 5")
    dist.destroy_process_group()

if __name__ == "__main__":
    os.environ["MASTER_PORT"] = str(29500 + os.getpid() % 2000)
    mp.spawn(run, args=(2, int(sys.argv[1]) if len(sys.argv) > 1 else -1), nprocs=2)
"""


@pytest.mark.slow
def test_mp_spawn_ranks_are_reported_and_collectives_are_timed_as_sync(tmp_path: Path) -> None:
    out, st = run_instrumented(tmp_path, DDP)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = {int(v["rank"]): int(pid) for pid, v in st.job_info["ranks"].items()}
    assert sorted(ranks) == [0, 1]
    facts = st.job_info["ranks"][str(ranks[0])]
    assert facts["world_size"] == 2 and facts["backend"] == "gloo"
    assert facts["launcher"] == "torch.multiprocessing.spawn"
    assert all(st.roles[pid] == "rank" for pid in ranks.values())
    lanes, _ = st.steps.lanes()
    by_pid = {lane.pid: lane for lane in lanes}
    assert by_pid[ranks[0]].n == by_pid[ranks[1]].n == 10
    # rank 0 waits for the slow rank 1 in the explicit all_reduce: timed as sync (10 x ~50 ms)
    assert by_pid[ranks[0]].sync_s > 0.25 > by_pid[ranks[1]].sync_s


@pytest.mark.slow
def test_an_exception_in_a_spawned_rank_is_reported_by_that_rank(tmp_path: Path) -> None:
    script = DDP.replace('int(sys.argv[1]) if len(sys.argv) > 1 else -1', "1")
    out, st = run_instrumented(tmp_path, script)
    assert out.returncode != 0
    ranks = {int(v["rank"]): pid for pid, v in st.job_info["ranks"].items()}
    first = next(iter(st.job_info["exceptions"]))  # rank 0 fails after it (its peer went away)
    assert first == ranks[1] and "rank 1 failed on batch 5" in st.job_info["exceptions"][first]
