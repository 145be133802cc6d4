"""Transformer graph fusion with ONNX Runtime's transformer optimizer (BERT-style encoders).

ORT's CPU kernels for the fused `Attention`, `SkipLayerNormalization`, `BiasGelu` and
`EmbedLayerNormalization` ops replace dozens of small ops per layer, and dynamic INT8 then quantizes
the fused attention's projections too. Applied only when the optimizer actually finds attention to
fuse; any other graph is left alone.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

from cpuwise._optional import require


def fuse_transformer(src: str | Path, dst: str | Path) -> dict[str, int] | None:
    """Write the fused model to `dst` and return the fused-op counts, or None if nothing was fused."""
    onnx = require("onnx", extra="optimize")
    ops = {n.op_type for n in onnx.load(str(src), load_external_data=False).graph.node}
    if not {"Softmax", "MatMul"} <= ops:  # no attention in this graph: nothing to fuse, skip the cost
        return None
    optimizer = require("onnxruntime.transformers.optimizer", extra="optimize", purpose="transformer fusion")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = optimizer.optimize_model(
                str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=1
            )
    finally:
        root.setLevel(level)
    stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
    if not stats.get("Attention") and not stats.get("MultiHeadAttention"):
        return None
    model.save_model_to_file(str(dst))
    return stats
