"""The fuse pass: transformer graph fusion with ONNX Runtime's transformer optimizer (BERT-style encoders).

ORT's CPU kernels for the fused `Attention`, `SkipLayerNormalization`, `BiasGelu` and
`EmbedLayerNormalization` ops replace dozens of small ops per layer, and dynamic INT8 then quantizes
the fused attention's projections too. Applied only when the optimizer actually finds attention to
fuse; any other graph is left alone. The fused graph becomes the base for INT8 even when fused FP32
alone is not faster: ORT's quantized attention is where fusion pays (and every INT8 candidate is
measured anyway); the torch passes' graphs are fused too.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from cpuwise._optional import require
from cpuwise.optimize.passes.base import Basis, Outcome, Pass, Plan
from cpuwise.optimize.runtimes.onnxruntime import quiet_logs
from cpuwise.optimize.search.choose import Candidate
from cpuwise.optimize.search.judge import Judge

LABEL = "ORT transformer fusion"


class FusePass(Pass):
    """Fuse attention subgraphs of the FP32 graph (lossless); later passes build on the fused graph."""

    name = "fuse"
    runtimes = frozenset({"onnxruntime"})  # OpenVINO fuses attention itself when it compiles a model

    def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        dst = basis.graph.with_name(basis.graph.stem + ".fused.onnx")
        parts = basis.parts | {"fusion": LABEL}
        try:
            stats = fuse_transformer(basis.graph, dst, attention_hint(basis.module))
        except Exception as exc:  # noqa: BLE001 - fusion is an optional optimisation
            dropped = f"fusion failed: {exc}"[:300]
            return Outcome([Candidate(LABEL, self.name, dropped=dropped, runtime=basis.runtime, parts=parts)])
        if stats is None:
            return Outcome(notes=[f"{self.name}: no transformer attention to fuse in this graph; left as is"])
        shown = ", ".join(f"{k} x{v}" for k, v in stats.items())
        c = judge.measure_file("", self.name, dst, basis.settings, basis.io, runtime=basis.rt, params=stats,
                               parts=parts, parent=basis.best.name,
                               notes=[f"ORT transformer optimizer: {shown}"])
        return Outcome([c], basis=replace(basis, graph=dst, fused=True) if c.ok else None)


def fuse_or_keep(path: Path, hint: tuple[int, int] | None) -> Path:
    """The fused copy of `path` when fusion finds attention in it, else `path` itself."""
    fused = path.with_name(path.stem + ".fused.onnx")
    try:
        return fused if fuse_transformer(path, fused, hint) is not None else path
    except Exception:  # noqa: BLE001 - keep the unfused graph
        return path


def attention_hint(module: Any) -> tuple[int, int] | None:
    """(num_heads, attention width) of the first self-attention inside a torch module (None: not found).

    Read off the attention module itself (Hugging Face's `num_attention_heads` x `attention_head_size`):
    a model whose heads were pruned has fewer than its config says, and ORT fuses with the count it is
    given. Without such a module, the Hugging Face config's (num_attention_heads, hidden_size).
    """
    modules = list(getattr(module, "modules", lambda: [])())
    for m in modules:
        heads, size = getattr(m, "num_attention_heads", None), getattr(m, "attention_head_size", None)
        if isinstance(heads, int) and isinstance(size, int):
            return heads, heads * size
    for m in modules:
        cfg = getattr(m, "config", None)
        heads, hidden = getattr(cfg, "num_attention_heads", None), getattr(cfg, "hidden_size", None)
        if isinstance(heads, int) and isinstance(hidden, int):
            return heads, hidden
    return None


def _guess_hidden(graph: Any) -> int | None:
    """The most common square MatMul weight size (the Q/K/V/output projections of an encoder)."""
    dims = {t.name: tuple(t.dims) for t in graph.initializer}
    counts: dict[int, int] = {}
    for n in graph.node:
        if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in dims:
            d = dims[n.input[1]]
            if len(d) == 2 and d[0] == d[1]:
                counts[d[0]] = counts.get(d[0], 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else None


def fuse_transformer(
    src: str | Path, dst: str | Path, hint: tuple[int, int] | None = None
) -> dict[str, int] | None:
    """Write the fused model to `dst` and return the fused-op counts, or None if nothing was fused.

    `hint` is (num_heads, hidden_size); without it the hidden size is read off the weights and the
    usual head sizes (64, 32, 128) are tried; a wrong guess simply fuses nothing.
    """
    onnx = require("onnx", extra="optimize")
    graph = onnx.load(str(src), load_external_data=False).graph
    if not {"Softmax", "MatMul"} <= {n.op_type for n in graph.node}:
        return None  # no attention in this graph: nothing to fuse, skip the cost
    if hint is not None:
        tries = [hint]
    else:
        hidden = _guess_hidden(graph)
        tries = [(hidden // hd, hidden) for hd in (64, 32, 128) if hidden and hidden % hd == 0]
    optimizer = require("onnxruntime.transformers.optimizer", extra="optimize", purpose="transformer fusion")
    for heads, hidden in tries:
        with quiet_logs(logging.CRITICAL), contextlib.redirect_stdout(io.StringIO()):
            model = optimizer.optimize_model(
                str(src), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
            )
        stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
        if stats.get("Attention") or stats.get("MultiHeadAttention"):
            model.save_model_to_file(str(dst))
            return stats
    return None
