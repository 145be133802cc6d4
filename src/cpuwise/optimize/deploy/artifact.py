"""The saved result: `model.onnx`, `cpuwise.json` (how to run it), `report.md` and `report.json`.

`cpuwise.json` is everything `cpuwise.optimize.load()` needs to reproduce the measured speed: the ONNX
Runtime session settings, the input tricks (dynamic padding / buckets / batch size), the cache and, for
text models, the tokenizer file copied next to the model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpuwise.errors import ConfigError
from cpuwise.optimize import runtimes
from cpuwise.optimize.io import IOConfig, SequenceSpec
from cpuwise.optimize.runtimes import Settings

FORMAT = "cpuwise-optimized/1"
MODEL_FILE = "model.onnx"
CONFIG_FILE = "cpuwise.json"


@dataclass
class RunConfig:
    """Everything `load()` needs to run the model as it was measured; `cpuwise.json` is its `to_dict()`."""

    model: str = MODEL_FILE
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
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if d.get("format") != FORMAT:
            raise ConfigError(f"expected a {CONFIG_FILE} with format {FORMAT!r}, found {d.get('format')!r}")
        return cls(
            model=d["model"],
            inputs=d["inputs"],
            output=d["output"],
            session=runtimes.get().settings_from_dict(d["session"]),
            io=IOConfig(**d["io"]),
            sequence=SequenceSpec.from_dict(d["sequence"]) if d.get("sequence") else None,
            cache_max_bytes=int(d.get("cache", {}).get("max_bytes", 0)),
            tokenizer=d.get("tokenizer"),
            max_length=d.get("max_length"),
            task=d.get("task", "generic"),
            info=d.get("info", {}),
        )


def save(
    out_dir: str | Path,
    onnx_path: str | Path,
    cfg: RunConfig,
    *,
    tokenizer_file: str | Path | None = None,
    report_md: str = "",
    report_json: dict[str, Any] | None = None,
) -> Path:
    """Write the artifact folder and return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(onnx_path)
    if src.resolve() != (out / MODEL_FILE).resolve():
        shutil.copyfile(src, out / MODEL_FILE)
    cfg.model = MODEL_FILE
    if tokenizer_file is not None:
        shutil.copyfile(tokenizer_file, out / "tokenizer.json")
        cfg.tokenizer = "tokenizer.json"
    (out / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    if report_md:
        (out / "report.md").write_text(report_md + "\n")
    if report_json is not None:
        (out / "report.json").write_text(json.dumps(report_json, indent=2, default=str))
    return out


def read(path: str | Path) -> tuple[Path, RunConfig]:
    """(folder, config) from an artifact folder or its cpuwise.json."""
    p = Path(path)
    cfg_path = p / CONFIG_FILE if p.is_dir() else p
    if not cfg_path.is_file():
        raise ConfigError(
            f"expected an optimized model folder with {CONFIG_FILE}, found none at {p}; "
            "create one with `cpuwise optimize`."
        )
    return cfg_path.parent, RunConfig.from_dict(json.loads(cfg_path.read_text()))
