"""Hugging Face models by the name of a local folder, and models that take their inputs by keyword.

`load_folder(path)` builds the model a `config.json` describes (AutoModel, or the task class its
`architectures` names, e.g. `BertForSequenceClassification`) from the weights in the folder, never from
the network. A sentence-transformers folder (`modules.json` with a Pooling module) gets its pooling
(mean / CLS / max) and normalisation, so the exported model returns the sentence embedding.

`KeywordModel(model, names)` makes a model that is called `model(**inputs)` callable positionally in the
order of `names` (what the exporter and the runtimes do), returning its first output tensor.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from cpuwise._optional import require
from cpuwise.errors import ConfigError

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def first_tensor(out: Any) -> Any:
    """The tensor a model's output stands for: logits / last_hidden_state / the first element."""
    for key in ("logits", "last_hidden_state", "sentence_embedding"):
        if hasattr(out, key):
            return getattr(out, key)
        if isinstance(out, dict) and key in out:
            return out[key]
    if isinstance(out, dict):
        return next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def keyword_model(model: Any, names: list[str]) -> Any:
    """`model` callable as `m(*tensors)` in `names` order, returning its first output tensor."""
    torch = require("torch")

    class KeywordModel(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *args: Any) -> Any:
            return first_tensor(self.inner(**dict(zip(names, args, strict=True))))

    return KeywordModel().eval()


def load_folder(path: Path) -> tuple[Any, list[str]]:
    """(model, input names) for a local Hugging Face folder; ConfigError when it is not one."""
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"expected a Hugging Face model folder (with config.json) at {path}, found none; fix: pass the "
            "folder save_pretrained() wrote, or a model file (.onnx, .pt2, TorchScript .pt)"
        )
    transformers = require("transformers", extra="hf", purpose=f"loading the model folder {path.name}")
    config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    arch = (getattr(config, "architectures", None) or [""])[0]
    task_class = getattr(transformers, arch, None) if arch and not arch.endswith("Model") else None
    cls = task_class or transformers.AutoModel
    level = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # eager attention: exportable, and the kind ORT fuses
            model = cls.from_pretrained(str(path), local_files_only=True, attn_implementation="eager").eval()
    finally:
        transformers.utils.logging.set_verbosity(level)
    names = ["input_ids", "attention_mask"]
    if getattr(config, "type_vocab_size", 0) and getattr(config, "type_vocab_size", 0) > 1:
        names.append("token_type_ids")
    pooling = _st_pooling(path)
    if pooling is not None:
        return _pooled(model, names, *pooling), names
    return keyword_model(model, names), names


def _st_pooling(path: Path) -> tuple[str, bool] | None:
    """(mode, normalize) of a sentence-transformers folder, None for a plain Hugging Face folder."""
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text())
    types = [m.get("type", "") for m in modules if isinstance(m, dict)]
    pool = next((m for m in modules if isinstance(m, dict) and m.get("type", "").endswith("Pooling")), None)
    if pool is None:
        return None
    cfg_file = path / pool.get("path", "") / "config.json"
    cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    mode = "mean"
    if cfg.get("pooling_mode_cls_token"):
        mode = "cls"
    elif cfg.get("pooling_mode_max_tokens"):
        mode = "max"
    return mode, any(t.endswith("Normalize") for t in types)


def _pooled(model: Any, names: list[str], mode: str, normalize: bool) -> Any:
    torch = require("torch")

    class SentenceEmbedder(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *args: Any) -> Any:
            feed = dict(zip(names, args, strict=True))
            hidden = first_tensor(self.inner(**feed))
            m = feed["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if mode == "cls":
                out = hidden[:, 0]
            elif mode == "max":
                out = (hidden - (1 - m) * 1e9).max(1).values
            else:
                out = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(out, p=2.0, dim=1) if normalize else out

    return SentenceEmbedder().eval()
