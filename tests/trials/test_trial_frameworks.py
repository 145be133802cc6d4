"""A --try-fixes trial of a Lightning or Hugging Face job leaves no checkpoints or logs that look like a
real run (skipped where the framework is not installed)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from cpuwise._trials import Overrides
from cpuwise.monitor.instrument import trial


@pytest.fixture()
def in_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trial, "OV", Overrides(steps=5))


def test_lightning_trials_turn_checkpointing_and_loggers_off(in_trial: None, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        pl = importlib.import_module("pytorch_lightning")
    except ImportError:
        pl = pytest.importorskip("lightning.pytorch")
    from cpuwise.integrations import lightning

    monkeypatch.chdir(tmp_path)
    kwargs = {"callbacks": [pl.callbacks.ModelCheckpoint(), pl.callbacks.EarlyStopping("loss")],
              "logger": True, "enable_checkpointing": True}
    lightning.trial_safe(pl, kwargs)
    assert kwargs["enable_checkpointing"] is False and kwargs["logger"] is False
    assert [type(c).__name__ for c in kwargs["callbacks"]] == ["EarlyStopping"]
    trainer = pl.Trainer(max_steps=1, enable_progress_bar=False, enable_model_summary=False, **kwargs)
    assert trainer.logger is None and trainer.checkpoint_callback is None


def test_hf_trials_save_nothing_and_report_nowhere(in_trial: None, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from cpuwise.integrations import hf

    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), save_strategy="steps",
                                          report_to=["tensorboard"])
    hf.trial_safe(args)
    assert args.save_strategy == "no" and args.report_to == [] and not args.push_to_hub
    strategies = importlib.import_module("transformers.trainer_utils")
    enum = getattr(strategies, "SaveStrategy", None) or strategies.IntervalStrategy
    assert args.save_strategy == enum.NO


LIGHTNING_JOB = '''
import pytorch_lightning as pl, torch
from torch.utils.data import DataLoader, TensorDataset

class M(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 2)
    def training_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

data = TensorDataset(torch.randn(256, 4), torch.randint(0, 2, (256,)))
trainer = pl.Trainer(max_epochs=50, enable_progress_bar=False, enable_model_summary=False,
                     callbacks=[pl.callbacks.ModelCheckpoint(every_n_train_steps=1)])
trainer.fit(M(), DataLoader(data, batch_size=8))
'''


def test_a_lightning_trial_stops_after_its_steps_and_writes_no_logs_or_checkpoints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pytorch_lightning")
    import sys

    from cpuwise._trials import OK
    from cpuwise.monitor.trials import run_trial

    script = tmp_path / "fit.py"
    script.write_text(LIGHTNING_JOB)
    monkeypatch.chdir(tmp_path)
    run = run_trial([sys.executable, str(script)], Overrides(steps=6, warmup=2, num_workers=1))
    assert run.status == OK, run.reason
    assert run.measured is not None and run.measured["steps"] == 6 and run.measured["stopped"]
    assert run.rec is not None and run.rec.exit_code == 0
    assert run.rec.job_info["dataloaders"][0]["num_workers"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.py"]  # no lightning_logs, no checkpoints
