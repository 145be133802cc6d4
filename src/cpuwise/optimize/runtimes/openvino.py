"""OpenVINO on the CPU: compiled models with tuned settings, async streams, and INT8 with NNCF.

Settings are OpenVINO's own knobs: the performance hint (LATENCY: one stream using every core;
THROUGHPUT: several streams, each running its own batch), the number of streams and threads, and the
inference precision. On CPUs with native bf16 (AVX512_BF16, AMX) OpenVINO computes in bf16 by default,
which is *not* lossless: cpuwise measures f32 (lossless) and bf16 as separate settings and scores both.
Streams only pay when several batches are in flight, so the runner has a `map(feeds)` that keeps one
infer request per stream busy (`AsyncInferQueue`); `io.run_batched` uses it.

INT8 comes from NNCF: post-training static quantization (calibrated on the evaluation rows, model type
"transformer" when the graph has attention), weight-only INT8 (data-free; the CPU plugin quantizes
activations on the fly), and NNCF's accuracy-aware quantization, which ranks the quantized layers by
their effect on the score and returns the ones that cost most to FP32 until the budget holds.

    rt = OpenVino()
    run = rt.runner(rt.session("model.onnx", OvSettings(hint="THROUGHPUT", streams=2, precision="f32")))
    outs = run.map([feed_a, feed_b])          # both batches in flight at once
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise._optional import available, require
from cpuwise.optimize.io import Feed
from cpuwise.optimize.runtimes.onnxruntime import quiet_logs

# OpenVINO element types -> the ONNX-style type strings the artifact and the input checks use
OV_TYPES = {"i64": "tensor(int64)", "i32": "tensor(int32)", "f32": "tensor(float)", "f64": "tensor(double)",
            "f16": "tensor(float16)", "boolean": "tensor(bool)", "u8": "tensor(uint8)"}
PRECISIONS = ("f32", "bf16")  # bf16 only where the CPU has it natively (see `native_bf16`)


@dataclass(frozen=True)
class OvSettings:
    """How to compile a model for the CPU plugin."""

    hint: str = "LATENCY"  # PERFORMANCE_HINT: LATENCY | THROUGHPUT
    streams: int = 0  # NUM_STREAMS; 0: what the hint picks
    threads: int = 0  # INFERENCE_NUM_THREADS; 0: every core
    precision: str = "f32"  # INFERENCE_PRECISION_HINT: f32 (lossless) | bf16
    requests: int = 1  # batches kept in flight by `map` (one per stream pays)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OvSettings:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def label(self) -> str:
        streams = f"{self.streams} streams" if self.streams else f"{self.hint.lower()} hint"
        threads = f" x {self.threads} threads" if self.threads else ""
        return f"{streams}{threads}, {self.precision}, {self.requests} in flight"

    @property
    def lossless(self) -> bool:
        return self.precision == "f32"

    def config(self) -> dict[str, str]:
        cfg = {"PERFORMANCE_HINT": self.hint, "INFERENCE_PRECISION_HINT": self.precision}
        if self.streams:
            cfg["NUM_STREAMS"] = str(self.streams)
        if self.threads:
            cfg["INFERENCE_NUM_THREADS"] = str(self.threads)
        return cfg


@functools.cache
def core() -> Any:
    """One `openvino.Core` per process (creating one costs tens of milliseconds)."""
    ov = require("openvino", extra="openvino", purpose="running models with OpenVINO")
    return ov.Core()


def native_bf16() -> bool:
    """True when the CPU plugin computes bf16 natively here (its default precision is then bf16)."""
    return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def settings_grid(cores: int, *, quick: bool = False, bf16: bool = False) -> list[OvSettings]:
    """The settings worth measuring on `cores` cores (pure, given `bf16`)."""
    precisions = ("f32", "bf16") if bf16 else ("f32",)
    grid = [OvSettings(hint="LATENCY", precision=p) for p in precisions]
    if cores >= 2:
        grid += [OvSettings(hint="THROUGHPUT", streams=cores, threads=cores, precision=p, requests=cores)
                 for p in precisions]
        if not quick and cores >= 4:
            grid += [OvSettings(hint="THROUGHPUT", streams=2, threads=cores, precision=p, requests=2)
                     for p in precisions]
    return grid


class OvRunner:
    """Runs a compiled model on one feed (`__call__`) or on many at once (`map`), first output only."""

    def __init__(self, compiled: Any, requests: int) -> None:
        self.compiled, self.requests = compiled, max(1, requests)
        self.names = [i.any_name for i in compiled.inputs]
        self._req = compiled.create_infer_request()
        self._queue: Any = None

    def __call__(self, feed: Feed) -> np.ndarray:
        out = self._req.infer({n: feed[n] for n in self.names})  # copied: OpenVINO may write to shared inputs
        return np.array(out[0], copy=True)

    def map(self, feeds: Sequence[Feed]) -> list[np.ndarray]:
        if self.requests == 1 or len(feeds) < 2:
            return [self(f) for f in feeds]
        ov = require("openvino")
        if self._queue is None:
            self._queue = ov.AsyncInferQueue(self.compiled, self.requests)
        results: list[np.ndarray | None] = [None] * len(feeds)

        def done(request: Any, i: int) -> None:
            results[i] = np.array(request.get_output_tensor(0).data, copy=True)

        self._queue.set_callback(done)
        for i, f in enumerate(feeds):
            self._queue.start_async({n: f[n] for n in self.names}, i)
        self._queue.wait_all()
        return [r for r in results if r is not None]


def compile_model(model: str | Path | bytes, settings: OvSettings | None = None) -> Any:
    """A model compiled for the CPU with `settings` (an .onnx or OpenVINO .xml file)."""
    s = settings or OvSettings()
    return core().compile_model(str(model), "CPU", s.config())


def model_io(path: str | Path) -> tuple[list[dict[str, Any]], str]:
    """Input descriptions (ONNX-style dtype strings, None for dynamic dims) and the first output name."""
    m = core().read_model(str(path))
    inputs = []
    for i in m.inputs:
        shape = [d.get_length() if d.is_static else None for d in i.get_partial_shape()]
        inputs.append({"name": i.any_name, "dtype": OV_TYPES.get(i.get_element_type().get_type_name(), "?"),
                       "shape": shape})
    return inputs, m.outputs[0].any_name


@dataclass(frozen=True)
class OvRecipe:
    """One way to make an INT8 model with NNCF."""

    name: str
    mode: str  # "static" (calibrated) | "weights" (weight-only, data-free) | "aware" (accuracy-aware static)
    preset: str = "performance"  # NNCF preset for activations: performance (symmetric) | mixed
    note: str = ""
    keep_fp32: str = ""  # weight groups (see weight_groups) left in float, joined by "|"
    smooth_quant: bool = True  # transformers: NNCF's SmoothQuant (moves activation outliers into weights)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


STATIC = OvRecipe("NNCF INT8 static", "static", note="calibrated on the evaluation rows")
STATIC_MIXED = OvRecipe("NNCF INT8 static, mixed preset", "static", preset="mixed",
                        note="asymmetric activations")
WEIGHTS = OvRecipe("NNCF INT8 weights only", "weights",
                   note="data-free; activations quantized on the fly by the CPU plugin")
AWARE = OvRecipe("NNCF INT8 accuracy-aware", "aware",
                 note="NNCF ranks quantized layers by their effect and returns the worst to FP32 until the "
                      "budget holds")


def is_transformer(path: str | Path) -> bool:
    """True when the graph has attention (Softmax and MatMul): NNCF's transformer model type then."""
    ops = {op.get_type_name() for op in core().read_model(str(path)).get_ordered_ops()}
    return {"Softmax", "MatMul"} <= ops


_WEIGHTED = {"MatMul", "Convolution", "GroupConvolution"}


def weight_groups(path: str | Path) -> dict[str, list[str]]:
    """Ops with a constant weight, grouped by op type and weight shape (one role of every layer)."""
    groups: dict[str, list[str]] = {}
    for op in core().read_model(str(path)).get_ordered_ops():
        if op.get_type_name() not in _WEIGHTED or op.get_input_size() < 2:
            continue
        src = op.input_value(1).get_node()
        while src.get_type_name() == "Convert" and src.get_input_size():
            src = src.input_value(0).get_node()
        if src.get_type_name() != "Constant":
            continue
        shape = "x".join(str(d) for d in src.get_output_shape(0))
        groups.setdefault(f"{op.get_type_name()} {shape}", []).append(op.get_friendly_name())
    return groups


def _dataset(feeds: list[Feed], names: list[str]) -> Any:
    nncf = require("nncf", extra="openvino", purpose="INT8 with NNCF")
    return nncf.Dataset([{n: f[n] for n in names} for f in feeds])


def quantize(src: str | Path, dst: str | Path, recipe: OvRecipe, calibration: list[Feed] | None,
             validate: Callable[[OvRunner], float] | None = None,
             validation: list[Feed] | None = None) -> str:
    """Write the INT8 model for `recipe` to `dst` (OpenVINO IR, .xml + .bin); returns a note."""
    nncf = require("nncf", extra="openvino", purpose="INT8 with NNCF")
    ov = require("openvino")
    model = core().read_model(str(src))
    names = [i.any_name for i in model.inputs]
    groups = weight_groups(src)
    exclude = [n for g in recipe.keep_fp32.split("|") if g for n in groups.get(g, [])]
    scope = nncf.IgnoredScope(names=exclude, validate=False) if exclude else None
    note = ""
    with quiet_logs(logging.ERROR), _nncf_quiet():
        if recipe.mode == "weights" or not calibration:
            if recipe.mode != "weights":
                note = "static INT8 needs calibration data (eval_inputs); made weight-only INT8 instead"
            q = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=scope)
        else:
            transformer = is_transformer(src)
            kwargs: dict[str, Any] = {
                "preset": nncf.QuantizationPreset.MIXED if recipe.preset == "mixed"
                else nncf.QuantizationPreset.PERFORMANCE,
                "model_type": nncf.ModelType.TRANSFORMER if transformer else None,
                "subset_size": sum(len(next(iter(f.values()))) for f in calibration),
                "ignored_scope": scope,
            }
            if transformer and not recipe.smooth_quant:
                adv = require("nncf.quantization.advanced_parameters")
                kwargs["advanced_parameters"] = adv.AdvancedQuantizationParameters(
                    smooth_quant_alphas=adv.AdvancedSmoothQuantParameters(matmul=-1))
            if recipe.mode == "aware" and validate is not None and validation:
                adv = require("nncf.quantization.advanced_parameters")
                kwargs.pop("advanced_parameters", None)
                q = nncf.quantize_with_accuracy_control(
                    model, _dataset(calibration, names), _dataset(validation, names),
                    lambda compiled, data: (validate(OvRunner(compiled, 1)), None), max_drop=1.0,
                    drop_type=nncf.DropType.ABSOLUTE,
                    advanced_accuracy_restorer_parameters=adv.AdvancedAccuracyRestorerParameters(
                        max_num_iterations=12, ranking_subset_size=len(validation), num_ranking_workers=1),
                    **kwargs)
            else:
                q = nncf.quantize(model, _dataset(calibration, names), **kwargs)
    ov.save_model(q, str(Path(dst).with_suffix(".xml")))
    return note


@contextlib.contextmanager
def _nncf_quiet() -> Iterator[None]:
    """NNCF logs hints on its own logger and draws progress bars on stdout for every call."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


class OpenVino:
    """OpenVINO's CPU plugin, as a `Runtime` (see runtimes/base.py)."""

    name = "openvino"
    title = "OpenVINO"
    model_suffix = ".xml"  # what its INT8 models are saved as

    def available(self) -> bool:
        return available("openvino") and available("nncf")

    def default_settings(self) -> OvSettings:
        return OvSettings()

    def reference_settings(self) -> OvSettings:
        return OvSettings(precision="f32")

    def settings_from_dict(self, d: dict[str, Any]) -> OvSettings:
        return OvSettings.from_dict(d)

    def settings_grid(self, cores: int, *, quick: bool = False) -> list[OvSettings]:
        return settings_grid(cores, quick=quick, bf16=native_bf16())

    def lossless(self, settings: OvSettings) -> bool:
        return settings.lossless

    def session(self, model: str | Path | bytes, settings: OvSettings | None = None) -> Any:
        s = settings or OvSettings()
        return compile_model(model, s), s.requests

    def runner(self, session: Any) -> OvRunner:
        compiled, requests = session
        return OvRunner(compiled, requests)

    def model_io(self, model: str | Path) -> tuple[list[dict[str, Any]], str]:
        return model_io(model)

    def int8_recipes(self, *, vnni: bool, have_calibration: bool) -> list[OvRecipe]:
        return [STATIC, STATIC_MIXED, WEIGHTS] if have_calibration else [WEIGHTS]

    def default_int8_recipe(self, *, vnni: bool) -> OvRecipe:
        return STATIC

    def aware_recipe(self) -> OvRecipe:
        return AWARE

    def quantize(self, src: str | Path, dst: str | Path, recipe: OvRecipe,
                 calibration: list[Feed] | None = None, **aware: Any) -> str:
        return quantize(src, dst, recipe, calibration, **aware)

    def weight_groups(self, model: str | Path) -> dict[str, list[str]]:
        return weight_groups(model)

    def keep_fp32(self, recipe: OvRecipe, group: str, size: int) -> OvRecipe:
        return replace(recipe, name=f"{recipe.name}, {group} kept FP32", keep_fp32=group,
                       note=f"{size} ops with {group} weights stay FP32")
