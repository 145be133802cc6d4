"""ONNX Runtime: session settings and sessions, runners, the thread sweep, and INT8 with ORT's quantizer.

Spinning (`allow_spinning`) makes idle ORT threads busy-wait for the next op; it lowers latency on a
quiet machine and wastes cores on a busy one, so it is measured, not assumed.

On CPUs without VNNI (AVX2 only), ORT's u8s8 integer kernels multiply pairs into int16 with
saturation (`vpmaddubsw`), so the default `quantize_dynamic` (signed 8-bit weights) silently damages
models (ORT issues #6004, #14642). Without VNNI cpuwise tries the safe recipes instead: 7-bit weights
(`reduce_range=True`) with per-channel scales, and unsigned 8-bit weights (U8U8). Every recipe's output
is then checked against the FP32 reference on this CPU by the search; nothing is trusted blindly.

    run = ort_runner(make_session("model.onnx", SessionSettings(intra_op_threads=2)))
    recipes = recipes_for(vnni=cpuwise.host.has_vnni(), have_calibration=True)
    note = quantize(src, dst, recipes[0], calibration=feeds)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise._optional import available, require
from cpuwise.optimize.bench import BenchResult, measure
from cpuwise.optimize.io import Feed, IOConfig, SequenceSpec
from cpuwise.optimize.runtimes.base import Runner

GRAPH_LEVELS = ("disable", "basic", "extended", "all")
# ONNX Runtime's input type strings -> numpy dtypes (what a feed must hold for each input).
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float16)": np.float16,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class SessionSettings:
    """How to build an `onnxruntime.InferenceSession`."""

    graph_level: str = "all"
    intra_op_threads: int = 0  # 0 = ORT's default (one per physical core)
    inter_op_threads: int = 1
    spinning: bool = True
    execution_mode: str = "sequential"  # or "parallel" (only helps graphs with independent branches)
    requests: int = 1  # batches run at once by `map` (threads sharing the session: ORT's "streams")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionSettings:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def label(self) -> str:
        spin = "spin" if self.spinning else "no-spin"
        streams = f", {self.requests} in flight" if self.requests > 1 else ""
        return f"{self.graph_level}, {self.intra_op_threads or 'default'} threads, {spin}{streams}"


def settings_grid(cores: int, *, quick: bool = False) -> list[SessionSettings]:
    """The settings worth measuring for `cores` usable cores (pure)."""
    threads = sorted({1, max(1, cores // 2), cores})
    levels = ("all",) if quick else ("extended", "all")
    grid = [
        SessionSettings(graph_level=lv, intra_op_threads=t, spinning=spin)
        for lv in levels
        for t in threads
        for spin in (True, False)
        if not (t == 1 and not spin)  # spinning is irrelevant with one thread
    ]
    if cores >= 2:  # one single-threaded batch per core: no thread hand-offs inside small ops
        grid.append(SessionSettings(intra_op_threads=1, spinning=False, requests=cores))
    if cores >= 4 and not quick:
        grid.append(
            SessionSettings(intra_op_threads=cores // 2, inter_op_threads=2, execution_mode="parallel")
        )
    return grid


def make_session(model: str | Path | bytes, settings: SessionSettings | None = None) -> Any:
    """An `onnxruntime.InferenceSession` on the CPU provider built with `settings`."""
    ort = require("onnxruntime", extra="optimize", purpose="running ONNX models")
    s = settings or SessionSettings()
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[s.graph_level]
    so.intra_op_num_threads = s.intra_op_threads
    so.inter_op_num_threads = s.inter_op_threads
    so.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if s.execution_mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    spin = "1" if s.spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    so.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


class OrtRunner:
    """Runs an ORT session on one feed, or on several at once (`map`, `requests` threads: ORT releases the
    GIL while it runs, so each thread runs its own batch); first output only, extra feed keys ignored."""

    def __init__(self, session: Any, requests: int = 1) -> None:
        self.session, self.requests = session, max(1, requests)
        self.names = [i.name for i in session.get_inputs()]
        self.out = session.get_outputs()[0].name
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, feed: Feed) -> np.ndarray:
        return np.asarray(self.session.run([self.out], {n: feed[n] for n in self.names})[0])

    def map(self, feeds: Sequence[Feed]) -> list[np.ndarray]:
        if self.requests == 1 or len(feeds) < 2:
            return [self(f) for f in feeds]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.requests, thread_name_prefix="cpuwise-ort")
        return list(self._pool.map(self, feeds))

    def __del__(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def ort_runner(session: Any, requests: int = 1) -> OrtRunner:
    """A runner for an ORT session that returns its first output; extra feed keys are ignored."""
    return OrtRunner(session, requests)


def onnx_io(path: str | Path) -> tuple[list[dict[str, Any]], str]:
    """Input descriptions and the first output name of an ONNX model."""
    sess = make_session(path, SessionSettings(graph_level="disable", intra_op_threads=1))
    inputs = [
        {"name": i.name, "dtype": i.type, "shape": [d if isinstance(d, int) else None for d in i.shape]}
        for i in sess.get_inputs()
    ]
    return inputs, sess.get_outputs()[0].name


def sweep_threads(cores: int) -> list[int]:
    """Thread counts for a sweep: powers of two up to `cores`, plus `cores` itself (pure)."""
    out, t = {max(1, cores)}, 1
    while t < cores:
        out.add(t)
        t *= 2
    return sorted(out)


def thread_sweep(
    model_path: Any,
    feed: Feed,
    threads: list[int],
    *,
    spec: SequenceSpec | None = None,
    io: IOConfig | None = None,
    latency_requests: int = 30,
    repeats: int = 2,
) -> list[tuple[int, BenchResult]]:
    """Measure the ONNX model at each intra-op thread count (spinning on; graph level all)."""
    out = []
    for t in threads:
        run = ort_runner(make_session(model_path, SessionSettings(intra_op_threads=t)))
        res = measure(run, feed, spec=spec, io=io, latency_requests=latency_requests, repeats=repeats)
        out.append((t, res))
    return out


@dataclass(frozen=True)
class Recipe:
    """One way to call ORT's quantizer."""

    name: str
    mode: str  # "dynamic" | "static"
    weight_type: str = "s8"  # "s8" | "u8"
    per_channel: bool = False
    reduce_range: bool = False
    note: str = ""
    keep_fp32: str = ""  # weight-shape groups (see weight_groups) left in float, joined by "|"

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
def quiet_logs(level: int = logging.ERROR) -> Iterator[None]:
    """Raise the root logger's level for the block.

    ORT's quantizer and transformer optimizer log hints (pre-processing, fusion progress) on the root
    logger for every call.
    """
    root = logging.getLogger()
    old = root.level
    root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(old)


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
    groups = weight_groups(src) if recipe.keep_fp32 else {}
    exclude = [n for g in recipe.keep_fp32.split("|") if g for n in groups.get(g, [])]
    exclude += [f"{n}_MatMul" for n in exclude]  # the quantizer first rewrites Gemm as `<name>_MatMul` + Add
    with quiet_logs():
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


class OnnxRuntime:
    """ONNX Runtime on the CPU provider, as a `Runtime` (see runtimes/base.py)."""

    name = "onnxruntime"
    title = "ONNX Runtime"
    model_suffix = ".onnx"

    def available(self) -> bool:
        return available("onnxruntime")

    def lossless(self, settings: SessionSettings) -> bool:
        return True

    def aware_recipe(self) -> None:
        return None  # the int8 pass's own per-group sensitivity search serves ORT

    def default_settings(self) -> SessionSettings:
        return SessionSettings()

    def reference_settings(self) -> SessionSettings:
        return SessionSettings(graph_level="basic")

    def settings_from_dict(self, d: dict[str, Any]) -> SessionSettings:
        return SessionSettings.from_dict(d)

    def settings_grid(self, cores: int, *, quick: bool = False) -> list[SessionSettings]:
        return settings_grid(cores, quick=quick)

    def session(self, model: str | Path | bytes, settings: SessionSettings | None = None) -> Any:
        return make_session(model, settings), (settings or SessionSettings()).requests

    def runner(self, session: Any) -> Runner:
        sess, requests = session
        return ort_runner(sess, requests)

    def model_io(self, model: str | Path) -> tuple[list[dict[str, Any]], str]:
        return onnx_io(model)

    def int8_recipes(self, *, vnni: bool, have_calibration: bool) -> list[Recipe]:
        return recipes_for(vnni, have_calibration)

    def default_int8_recipe(self, *, vnni: bool) -> Recipe:
        return ORT_DEFAULT if vnni else SAFE_S8

    def quantize(
        self, src: str | Path, dst: str | Path, recipe: Recipe, calibration: list[Feed] | None = None,
        **aware: Any
    ) -> str:
        return quantize(src, dst, recipe, calibration)

    def weight_groups(self, model: str | Path) -> dict[str, list[str]]:
        return weight_groups(model)

    def keep_fp32(self, recipe: Recipe, group: str, size: int) -> Recipe:
        return keep_fp32(recipe, group, size)
