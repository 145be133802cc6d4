"""The saved result: the model file(s), `cpuwise.json` (how to run it), `report.md` and `report.json`.

`cpuwise.json` is everything `cpuwise.optimize.load()` needs to reproduce the measured speed: the runtime
(ONNX Runtime or OpenVINO) and its settings, the input tricks (dynamic padding / buckets / batch size),
the cache and, for text models, the tokenizer file copied next to the model. It is read back as JSON
and validated field by field (`checks.py`); the files it names must lie inside the folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpuwise.errors import ConfigError
from cpuwise.optimize import runtimes
from cpuwise.optimize.deploy import checks
from cpuwise.optimize.evaluate import TASKS
from cpuwise.optimize.io import IOConfig, SequenceSpec
from cpuwise.optimize.runtimes import Settings

FORMAT = "cpuwise-optimized/1"
MODEL_FILE = "model.onnx"
CONFIG_FILE = "cpuwise.json"
TOKENIZER_FILE = "tokenizer.json"


@dataclass
class RunConfig:
    """Everything `load()` needs to run the model as it was measured; `cpuwise.json` is its `to_dict()`."""

    model: str = MODEL_FILE  # file name inside the artifact folder (model.onnx, or model.xml for OpenVINO)
    runtime: str = runtimes.DEFAULT
    inputs: list[dict[str, Any]] = field(default_factory=list)  # name, dtype, shape (None = dynamic)
    output: str = "output"
    session: Settings = field(default_factory=lambda: runtimes.get().default_settings())
    io: IOConfig = field(default_factory=IOConfig)
    sequence: SequenceSpec | None = None
    cache_max_bytes: int = 64 << 20
    tokenizer: str | None = None  # file name next to the model (tokenizers' tokenizer.json)
    max_length: int | None = None
    task: str = "generic"
    info: dict[str, Any] = field(default_factory=dict)  # chosen candidate, budget, host: for humans

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.model,
            "runtime": self.runtime,
            "inputs": self.inputs,
            "output": self.output,
            "session": self.session.to_dict(),
            "io": self.io.to_dict(),
            "sequence": self.sequence.to_dict() if self.sequence else None,
            "cache": {"max_bytes": self.cache_max_bytes},
            "tokenizer": self.tokenizer,
            "max_length": self.max_length,
            "task": self.task,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: Any) -> RunConfig:
        """A RunConfig from the parsed cpuwise.json; ConfigError naming the first field that is wrong."""
        if not isinstance(d, dict):
            raise checks.bad("(top level)", "a JSON object", d)
        if d.get("format") != FORMAT:
            raise ConfigError(f"expected a {CONFIG_FILE} with format {FORMAT!r}, found {d.get('format')!r}")
        name = checks.get(d, "runtime", (str,), default=runtimes.DEFAULT)
        if name not in runtimes.RUNTIMES:
            raise checks.bad("runtime", f"one of {sorted(runtimes.RUNTIMES)}", name)
        runtime = runtimes.get(name)
        io = checks.frozen_from_dict(IOConfig, checks.get(d, "io", (dict,)), "io")
        checks.positive(io.batch_size, "io.batch_size")
        checks.positive(io.bucket_multiple, "io.bucket_multiple")
        seq = checks.get(d, "sequence", (dict, type(None)), default=None)
        cache = checks.get(d, "cache", (dict,), default={})
        max_length = checks.get(d, "max_length", (int, type(None)), default=None)
        if max_length is not None:
            checks.positive(max_length, "max_length")
        task = checks.get(d, "task", (str,), default="generic")
        if task not in TASKS:
            raise checks.bad("task", f"one of {TASKS}", task)
        max_bytes = checks.get(cache, "max_bytes", (int,), "cache.", default=0)
        if max_bytes < 0:
            raise checks.bad("cache.max_bytes", "an integer >= 0", max_bytes)
        return cls(
            model=checks.get(d, "model", (str,)),
            runtime=name,
            inputs=_inputs(checks.get(d, "inputs", (list,))),
            output=checks.get(d, "output", (str,)),
            session=checks.frozen_from_dict(
                type(runtime.default_settings()), checks.get(d, "session", (dict,)), "session"
            ),
            io=io,
            sequence=_sequence(seq) if seq else None,
            cache_max_bytes=max_bytes,
            tokenizer=checks.get(d, "tokenizer", (str, type(None)), default=None),
            max_length=max_length,
            task=task,
            info=checks.get(d, "info", (dict,), default={}),
        )


def _inputs(items: list[Any]) -> list[dict[str, Any]]:
    """The `inputs` list, each {name: str, dtype: str, shape: list of int or null}."""
    for i, it in enumerate(items):
        where = f"inputs[{i}]."
        checks.typed(it, (dict,), f"inputs[{i}]")
        checks.get(it, "name", (str,), where)
        checks.get(it, "dtype", (str,), where)
        for j, dim in enumerate(checks.get(it, "shape", (list,), where)):
            checks.typed(dim, (int, type(None)), f"inputs[{i}].shape[{j}]")
    return items


def _sequence(d: dict[str, Any]) -> SequenceSpec:
    """The `sequence` object: which inputs carry the sequence axis and which is the mask."""
    seq = checks.get(d, "sequence_inputs", (list,), "sequence.")
    for i, s in enumerate(seq):
        checks.typed(s, (str,), f"sequence.sequence_inputs[{i}]")
    pads = checks.get(d, "pad_values", (dict,), "sequence.", default={})
    for k, v in pads.items():
        checks.typed(v, (int,), f"sequence.pad_values.{k}")
    return SequenceSpec(
        mask=checks.get(d, "mask", (str,), "sequence."),
        sequence_inputs=tuple(seq),
        pad_values=dict(pads),
        mask_pads=checks.get(d, "mask_pads", (bool,), "sequence.", default=False),
    )


def model_files(path: str | Path) -> list[Path]:
    """The files a model consists of: an ONNX file, or OpenVINO's `.xml` with its `.bin` weights."""
    p = Path(path)
    return [p, p.with_suffix(".bin")] if p.suffix == ".xml" else [p]


def save(
    out_dir: str | Path,
    model_path: str | Path,
    cfg: RunConfig,
    *,
    tokenizer_file: str | Path | None = None,
    report_md: str = "",
    report_json: dict[str, Any] | None = None,
) -> Path:
    """Write the artifact folder and return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(model_path)
    cfg.model = "model" + src.suffix
    for f in model_files(src):
        dst = out / ("model" + f.suffix)
        if f.resolve() != dst.resolve():
            shutil.copyfile(f, dst)
    if tokenizer_file is not None:
        shutil.copyfile(tokenizer_file, out / TOKENIZER_FILE)
        cfg.tokenizer = TOKENIZER_FILE
    (out / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    if report_md:
        (out / "report.md").write_text(report_md + "\n")
    if report_json is not None:
        (out / "report.json").write_text(json.dumps(report_json, indent=2, default=str))
    return out


def read(path: str | Path) -> tuple[Path, RunConfig]:
    """(folder, config) from an artifact folder or its cpuwise.json, validated: see `checks`."""
    p = Path(path)
    cfg_path = p / CONFIG_FILE if p.is_dir() else p
    if not cfg_path.is_file():
        raise ConfigError(
            f"expected an optimized model folder with {CONFIG_FILE}, found none at {p}; "
            "create one with `cpuwise optimize`."
        )
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{cfg_path} is not JSON ({exc}); fix: {checks.FIX}") from exc
    cfg = RunConfig.from_dict(data)
    folder = cfg_path.parent
    model = checks.inside(folder, cfg.model, "model")
    for f in model_files(model)[1:]:
        checks.confined(folder, f, f"the weights of '{cfg.model}' ({f.name})")
    if model.suffix == ".onnx":
        checks.onnx_data_confined(folder, model)
    if cfg.tokenizer is not None:
        checks.inside(folder, cfg.tokenizer, "tokenizer")
    return folder, cfg
