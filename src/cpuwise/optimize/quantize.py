"""INT8 with ONNX Runtime's quantizer, chosen for the CPU's features.

On CPUs without VNNI (AVX2 only), ORT's u8s8 integer kernels multiply pairs into int16 with
saturation (`vpmaddubsw`), so the default `quantize_dynamic` (signed 8-bit weights) silently damages
models (ORT issues #6004, #14642). Without VNNI cpuwise tries the safe recipes instead: 7-bit weights
(`reduce_range=True`) with per-channel scales, and unsigned 8-bit weights (U8U8). Every recipe's output
is then checked against the FP32 reference on this CPU by the search; nothing is trusted blindly.

    recipes = recipes_for(vnni=cpuwise.host.has_vnni(), have_calibration=True)
    note = quantize(src, dst, recipes[0], calibration=feeds)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cpuwise._optional import require
from cpuwise.optimize.io import Feed


@dataclass(frozen=True)
class Recipe:
    name: str
    mode: str  # "dynamic" | "static"
    weight_type: str = "s8"  # "s8" | "u8"
    per_channel: bool = False
    reduce_range: bool = False
    note: str = ""
    keep_fp32: str = ""  # a weight-shape group (see weight_groups) left in float: the offending nodes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ORT_DEFAULT = Recipe("int8 dynamic (ORT default)", "dynamic", note="ORT's one-line quantize_dynamic")
SAFE_S8 = Recipe(
    "int8 dynamic, reduce_range+per-channel",
    "dynamic",
    per_channel=True,
    reduce_range=True,
    note="7-bit weights avoid u8s8 saturation without VNNI",
)
U8U8 = Recipe("int8 dynamic, U8U8", "dynamic", weight_type="u8", note="unsigned weights: no u8s8 saturation")
PER_CHANNEL = Recipe("int8 dynamic, per-channel", "dynamic", per_channel=True)
STATIC_QDQ = Recipe(
    "int8 static QDQ, per-channel", "static", per_channel=True, note="calibrated on the given data"
)
STATIC_QDQ_RR = Recipe(
    "int8 static QDQ, per-channel, reduce_range",
    "static",
    per_channel=True,
    reduce_range=True,
    note="calibrated on the given data; 7-bit weights (no VNNI)",
)


def recipes_for(vnni: bool, have_calibration: bool, *, include_default: bool = True) -> list[Recipe]:
    """The INT8 recipes worth measuring on a CPU with/without VNNI (pure).

    The ORT default is kept on non-VNNI CPUs only as a comparison point: the FP32 check rejects it
    when it breaks the budget.
    """
    if vnni:
        out = [ORT_DEFAULT, PER_CHANNEL]
        static = [STATIC_QDQ]
    else:
        out = [SAFE_S8, U8U8] + ([ORT_DEFAULT] if include_default else [])
        static = [STATIC_QDQ_RR]
    return out + (static if have_calibration else [])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ORT's quantizer logs a pre-processing hint on the root logger for every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _Reader:
    """A CalibrationDataReader over a list of feeds (one model call each)."""

    def __init__(self, feeds: list[Feed], names: list[str]) -> None:
        self._it = iter([{n: f[n] for n in names} for f in feeds])

    def get_next(self) -> Feed | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - ORT calls it only for some calibrators
        pass


_WEIGHTED_OPS = {"MatMul": 1, "Gemm": 1, "Attention": 1, "Conv": 1}  # op -> input index of the weight


def weight_groups(path: str | Path) -> dict[str, list[str]]:
    """Nodes with a constant weight, grouped by weight shape ("384x1536" -> node names).

    In a transformer each group is one role (Q/K/V, attention output, FFN up, FFN down) across all
    layers, which is the natural unit to keep in float when INT8 saturates somewhere.
    """
    onnx = require("onnx", extra="optimize")
    graph = onnx.load(str(path)).graph
    shapes = {t.name: "x".join(str(d) for d in t.dims) for t in graph.initializer}
    groups: dict[str, list[str]] = {}
    for node in graph.node:
        idx = _WEIGHTED_OPS.get(node.op_type)
        if idx is None or len(node.input) <= idx or node.input[idx] not in shapes or not node.name:
            continue
        groups.setdefault(f"{node.op_type} {shapes[node.input[idx]]}", []).append(node.name)
    return groups


def keep_fp32(recipe: Recipe, group: str, size: int) -> Recipe:
    """`recipe` with the nodes of weight group `group` left in float."""
    from dataclasses import replace

    return replace(
        recipe,
        name=f"{recipe.name}, {group} kept FP32",
        keep_fp32=group,
        note=f"{size} nodes with {group} weights stay FP32 (largest INT8 error)",
    )


def quantize(src: str | Path, dst: str | Path, recipe: Recipe, calibration: list[Feed] | None = None) -> str:
    """Write the INT8 model for `recipe` to `dst`; returns a note ("" or why the recipe changed).

    A static recipe without calibration data falls back to dynamic quantization with a note.
    """
    q = require("onnxruntime.quantization", extra="optimize", purpose="INT8 quantization")
    wtype = q.QuantType.QUInt8 if recipe.weight_type == "u8" else q.QuantType.QInt8
    note = ""
    exclude = weight_groups(src).get(recipe.keep_fp32, []) if recipe.keep_fp32 else []
    exclude += [f"{n}_MatMul" for n in exclude]  # the quantizer first rewrites Gemm as `<name>_MatMul` + Add
    with _quiet():
        if recipe.mode == "static" and calibration:
            ort = require("onnxruntime")
            names = [
                i.name
                for i in ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()
            ]
            q.quantize_static(
                str(src),
                str(dst),
                _Reader(calibration, names),
                quant_format=q.QuantFormat.QDQ,
                per_channel=recipe.per_channel,
                reduce_range=recipe.reduce_range,
                activation_type=q.QuantType.QUInt8,
                weight_type=wtype,
                calibrate_method=q.CalibrationMethod.MinMax,
                nodes_to_exclude=exclude,
            )
            return note
        if recipe.mode == "static":
            note = "static INT8 needs calibration data (eval_inputs); fell back to dynamic INT8"
        onnx = require("onnx")
        q.quantize_dynamic(  # DefaultTensorType: fused contrib ops (Attention...) carry no inferred types
            str(src),
            str(dst),
            weight_type=wtype,
            per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range,
            nodes_to_exclude=exclude,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return note
