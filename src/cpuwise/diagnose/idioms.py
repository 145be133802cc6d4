"""Loader fixes written in the idiom of the framework the job uses (pure).

A fix the user cannot paste is half a fix: a Lightning job changes its DataModule's `train_dataloader`,
a Hugging Face Trainer job its `TrainingArguments(dataloader_*)`, a Keras job its `PyDataset(workers=...,
use_multiprocessing=True)` or its tf.data pipeline (`AUTOTUNE`), a cpuwise.data job its `.map(workers=)`,
and a plain torch job its `DataLoader(...)`.

    loader_code(rec, workers=4, persistent=True, prefetch=4)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cpuwise._schema import Recording

TORCH, LIGHTNING, HF, KERAS, TF_DATA, CPUWISE_DATA, LOOP = (
    "torch", "lightning", "hf", "keras", "tf.data", "cpuwise.data", "loop")


@dataclass(frozen=True)
class Idiom:
    """Which framework feeds the training loop, and the facts a fix needs about it."""

    name: str  # one of the constants above
    facts: dict[str, Any]

    @property
    def workers_param(self) -> str:
        """The setting that holds the workers in this idiom."""
        return {HF: "dataloader_num_workers", KERAS: "PyDataset workers", TF_DATA: "num_parallel_calls",
                CPUWISE_DATA: "map workers", LOOP: "DataLoader num_workers"}.get(self.name, "num_workers")

    @property
    def label(self) -> str:
        return {TORCH: "torch DataLoader", LIGHTNING: "PyTorch Lightning", HF: "Hugging Face Trainer",
                KERAS: "Keras PyDataset", TF_DATA: "tf.data", CPUWISE_DATA: "cpuwise.data",
                LOOP: "hand-written batch loop"}[self.name]


def idiom_of(rec: Recording) -> Idiom:
    """The framework whose idiom the job's fixes are written in (from what the job reported)."""
    fw = rec.job_info.get("framework")
    fw = fw if isinstance(fw, dict) else {}
    name = fw.get("name")
    if name == "lightning":
        return Idiom(LIGHTNING, fw)
    if name == "hf":
        return Idiom(HF, fw)
    if name == "keras":
        return Idiom(TF_DATA if fw.get("data") == "tf.data" else KERAS, fw)
    if rec.pipeline_stats or rec.job_info.get("step_source") == "cpuwise.data":
        return Idiom(CPUWISE_DATA, fw)
    if rec.job_info.get("step_source") == "watch" and not rec.job_info.get("dataloaders"):
        return Idiom(LOOP, fw)
    return Idiom(TORCH, fw)


def loader_code(rec: Recording, *, workers: int, persistent: bool = True, prefetch: int | None = 4,
                comment: str = "") -> str:
    """The code that gives the job's input pipeline `workers` workers (kept across epochs), in its idiom."""
    idiom = idiom_of(rec)
    note = f"  # {comment}" if comment else ""
    pf = f", prefetch_factor={prefetch}" if prefetch else ""
    keep = ", persistent_workers=True" if persistent else ""
    dl = f"DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers={workers}{keep}{pf})"
    if idiom.name == LIGHTNING:
        where = idiom.facts.get("loader_from")
        owner = idiom.facts.get("owner") or ("MyData" if where == "datamodule" else "MyModel")
        if where == "fit":
            return (f"# the DataLoader given to trainer.fit:\n"
                    f"train_loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,\n"
                    f"                          num_workers={workers}{keep}{pf}){note}\n"
                    "trainer.fit(model, train_loader)")
        base = "pl.LightningDataModule" if where != "module" else "pl.LightningModule"
        attr = "self.train" if where != "module" else "self.train_set"
        return (f"class {owner}({base}):\n"
                "    def train_dataloader(self):\n"
                f"        return DataLoader({attr}, batch_size=self.batch_size, shuffle=True,\n"
                f"                          num_workers={workers}{keep}{pf}){note}")
    if idiom.name == HF:
        lines = [f"    dataloader_num_workers={workers},{note}"]
        if prefetch:
            lines.append(f"    dataloader_prefetch_factor={prefetch},")
        if persistent:
            lines.append("    dataloader_persistent_workers=True,")
        return "args = TrainingArguments(\n    ...,\n" + "\n".join(lines) + "\n)"
    if idiom.name == KERAS:
        cls = idiom.facts.get("class") or "MyData"
        queue = f", max_queue_size={max(10, 2 * workers)}"
        return (f"class {cls}(keras.utils.PyDataset):\n"
                "    def __init__(self, files, batch_size, **kwargs):\n"
                f"        super().__init__(workers={workers}, use_multiprocessing=True{queue},\n"
                f"                         **kwargs){note}\n"
                "        ...\n"
                "# processes sidestep the GIL for Python/NumPy/PIL work (threads: use_multiprocessing=False)")
    if idiom.name == TF_DATA:
        return ("# tf.data: let it size the parallelism and overlap the input with training\n"
                "ds = (tf.data.Dataset.from_tensor_slices(paths)\n"
                "      .map(load_and_augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)\n"
                f"      .batch(batch_size)\n      .prefetch(tf.data.AUTOTUNE)){note}\n"
                "model.fit(ds, epochs=epochs)")
    if idiom.name == CPUWISE_DATA:
        return (f"ds = cd.from_folder(root).shuffle(seed=0).map(fn, workers={workers}){note}\n"
                "# or let cpuwise.data size it within a budget: .map(fn, workers='auto')")
    if idiom.name == LOOP:
        return ("# move the per-batch work out of the training process: a Dataset and worker processes\n"
                "class Batches(torch.utils.data.IterableDataset):\n"
                "    def __iter__(self):\n"
                "        yield from make_batches()          # your generator, now run in the workers\n"
                f"loader = DataLoader(Batches(), batch_size=None, num_workers={workers}{keep}{pf}){note}")
    return f"loader = torch.utils.data.{dl}{note}"


def persistent_code(rec: Recording, workers: int) -> str:
    """Keep the workers (and what each built on first use) alive across epochs, in the job's idiom."""
    idiom = idiom_of(rec)
    if idiom.name == HF:
        return ("args = TrainingArguments(\n    ...,\n"
                f"    dataloader_num_workers={workers},\n"
                "    dataloader_persistent_workers=True,  # no fresh workers (Dataset set-up) each epoch\n"
                ")")
    code = loader_code(rec, workers=max(1, workers), persistent=True, prefetch=None,
                       comment="persistent_workers=True: start once, not every epoch")
    return code + "\n# and build expensive Dataset state once, in __init__, not lazily in every worker"
