"""Transformer fusion: the head count comes from the attention itself, so a pruned BERT fuses correctly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cpuwise.optimize.export import export_onnx
from cpuwise.optimize.passes import PassContext
from cpuwise.optimize.passes.fuse import attention_hint, fuse_or_keep
from cpuwise.optimize.passes.prune import PrunePass
from cpuwise.optimize.runtimes.onnxruntime import make_session, ort_runner

torch = pytest.importorskip("torch")


def test_a_bert_with_pruned_heads_is_fused_with_its_own_head_count(
    tiny_bert: Any, token_rows: Any, tmp_path: Path
) -> None:
    model = tiny_bert(heads=4)
    ids, mask = token_rows(8, 12)
    x = (torch.from_numpy(ids), torch.from_numpy(mask))
    ctx = PassContext(example_inputs=x, task="embedding")
    pruned = PrunePass(ratio=0.5, finetune_epochs=0).run(model, ctx)
    assert attention_hint(model) == (4, 32) and attention_hint(pruned.model) == (2, 16)
    path = export_onnx(pruned.model, x, tmp_path / "pruned.onnx", input_names=["input_ids", "attention_mask"])
    fused = fuse_or_keep(path, attention_hint(pruned.model))
    assert fused != path  # the optimizer fused it ...
    feed = {"input_ids": ids, "attention_mask": mask}
    out = ort_runner(make_session(fused))(feed)  # ... into a graph ORT loads (with 4 heads it did not)
    assert np.allclose(out, ort_runner(make_session(path))(feed), atol=1e-5)
