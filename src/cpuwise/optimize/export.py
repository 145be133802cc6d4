"""Models in, ONNX out: export a torch module with dynamic batch/sequence axes, or load a saved model.

Uses the TorchScript exporter (`dynamo=False`) first: it handles the models cpuwise targets (BERT-style
encoders, CNNs) quickly. PyTorch's fused inference paths (`nn.TransformerEncoder` /
`nn.MultiheadAttention` "fast path": nested tensors, `_transformer_encoder_layer_fwd`) have no ONNX
mapping, so they are switched off while exporting (the math is the same). When the TorchScript exporter
still fails, torch's dynamo-based exporter (`dynamo=True`, needs onnxscript) is tried; when both fail the
first error is raised, with the op and the module that called it (the model is run once more under a
dispatch recorder to find it).

    path = export_onnx(model, (ids, mask), "model.onnx", input_names=["input_ids", "attention_mask"])
    source = load_model("model.pt2")        # .onnx path, a Hugging Face folder, a .pt2 / TorchScript .pt
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise._optional import available, require
from cpuwise.errors import ConfigError, ExportError
from cpuwise.optimize import hf

OPSET = 17
_OP_RE = re.compile(r"operator '([\w:.]+)'")


@dataclass
class ModelSource:
    """What the user gave: exactly one of `onnx_path` or `module` is set."""

    onnx_path: Path | None = None
    module: Any = None  # torch.nn.Module
    origin: str = ""
    example_inputs: tuple[Any, ...] | None = None  # saved with a .pt2, when present
    tokenizer_file: Path | None = None  # a Hugging Face folder's tokenizer.json
    input_names: list[str] | None = None  # the names a Hugging Face model takes, in call order


def load_model(path: str | Path) -> ModelSource:
    """Load a saved model without executing pickled code.

    `.onnx` -> used as is; `.pt2` -> `torch.export.load(...).module()`; `.pt`/`.pth` -> a TorchScript
    archive (`torch.jit.load`). A pickled state dict cannot become a model on its own: that raises
    ConfigError asking for the `nn.Module` through the Python API.
    """
    p = Path(path)
    if p.is_dir():
        model, names = hf.load_folder(p)
        tok = p / "tokenizer.json"
        return ModelSource(module=model, origin=str(p), tokenizer_file=tok if tok.is_file() else None,
                           input_names=names)
    if not p.is_file():
        raise ConfigError(
            f"expected a model file (.onnx, .pt2, TorchScript .pt) or a Hugging Face model folder, found "
            f"nothing at {p}"
        )
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        check_onnx_file(p)
        return ModelSource(onnx_path=p, origin=str(p))
    torch = require("torch", purpose=f"loading {p.name}")
    if suffix == ".pt2":
        ep = torch.export.load(str(p))
        example = ep.example_inputs[0] if getattr(ep, "example_inputs", None) else None
        return ModelSource(module=_ExportedWrapper.wrap(ep.module()), origin=str(p), example_inputs=example)
    if suffix in (".pt", ".pth"):
        if zipfile.is_zipfile(p) and _is_torchscript(p):
            return ModelSource(module=torch.jit.load(str(p), map_location="cpu").eval(), origin=str(p))
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
        raise ConfigError(
            f"{p.name} holds a {type(obj).__name__} (weights only), not a runnable model. Build the model "
            "in Python, load the weights, and call cpuwise.optimize.optimize(model, ...), or save it with "
            "torch.export.save(torch.export.export(model, args), 'model.pt2')."
        )
    raise ConfigError(f"expected a .onnx, .pt2 or TorchScript .pt file, got '{p.suffix}' ({p})")


def check_onnx_file(p: Path) -> None:
    """ConfigError unless `p` parses as an ONNX model with a graph (its weights are not read)."""
    onnx = require("onnx", extra="optimize", purpose=f"reading {p.name}")
    try:
        proto = onnx.load(str(p), load_external_data=False)
        ok = len(proto.graph.node) > 0 and len(proto.graph.output) > 0
        why = "a protobuf without a graph" if not ok else ""
    except Exception as exc:  # noqa: BLE001 - whatever the parser says, the file is not a model
        ok, why = False, f"bytes the ONNX parser rejects ({first_line(exc)[:120]})"
    if not ok:
        head = p.read_bytes()[:4]
        if head.startswith(b"PK"):
            why = "a zip archive (a TorchScript .pt or .pt2 renamed? keep its own suffix)"
        if p.stat().st_size == 0:
            why = "an empty file"
        raise ConfigError(
            f"expected an ONNX model in {p.name}, found {why}; fix: export it with "
            "torch.onnx.export (or pass the original file with its own suffix)"
        )


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class _ExportedWrapper:
    """Makes a torch.export graph module usable where an nn.Module is expected: such modules refuse
    train()/eval(), which the TorchScript ONNX exporter calls, so the graph is kept off the module tree."""

    @staticmethod
    def wrap(gm: Any) -> Any:
        torch = require("torch")

        for param in gm.parameters():  # traced as constants: they must not require grad
            param.requires_grad_(False)

        class ExportedProgramModule(torch.nn.Module):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                super().__init__()
                object.__setattr__(self, "graph_module", gm)

            def forward(self, *args: Any) -> Any:
                return self.graph_module(*args)

        return ExportedProgramModule().eval()


def _is_torchscript(p: Path) -> bool:
    with zipfile.ZipFile(p) as zf:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())


def default_dynamic_axes(
    example_inputs: tuple[Any, ...], input_names: list[str], output_names: list[str]
) -> dict[str, dict[int, str]]:
    """Batch is dynamic everywhere; a 2-D integer or bool input (token ids, masks) also gets a dynamic
    sequence, and so does axis 1 of a float (batch, length, features) input of that length."""
    axes: dict[str, dict[int, str]] = {}
    seq = {x.shape[1] for x in example_inputs if x.ndim == 2 and not x.dtype.is_floating_point}
    for name, x in zip(input_names, example_inputs, strict=True):
        d = {0: "batch"}
        if (x.ndim == 2 and not x.dtype.is_floating_point) or (
            x.ndim == 3 and x.dtype.is_floating_point and x.shape[1] in seq
        ):
            d[1] = "sequence"
        axes[name] = d
    for name in output_names:
        axes[name] = {0: "batch"}
    return axes


def export_onnx(
    model: Any,
    example_inputs: tuple[Any, ...],
    path: str | Path,
    *,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    opset: int = OPSET,
) -> Path:
    """Export `model(*example_inputs)` to ONNX at `path`; raises ExportError naming the op and module."""
    torch = require("torch", purpose="exporting to ONNX")
    inputs = tuple(torch.as_tensor(x) for x in example_inputs)
    input_names = input_names or [f"input_{i}" for i in range(len(inputs))]
    output_names = output_names or ["output"]
    axes = dynamic_axes or default_dynamic_axes(inputs, input_names, output_names)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        model = model.eval()
    except NotImplementedError:  # modules from torch.export(.load) are already inference graphs
        pass
    try:
        with _quiet(), _no_fast_paths(), torch.no_grad():
            torch.onnx.export(
                model,
                inputs,
                str(path),
                dynamo=False,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=axes,
                opset_version=opset,
            )
    except Exception as exc:  # noqa: BLE001 - every exporter failure becomes one clear ExportError
        err = _export_error(model, inputs, exc, opset)
        if not available("onnxscript"):
            raise err from exc
        try:
            _export_dynamo(model, inputs, path, input_names, output_names, axes)
        except Exception as exc2:  # noqa: BLE001 - both exporters failed: the first error is the one to fix
            why = first_line(exc2)[:200]
            raise ExportError(f"{err} (torch's dynamo exporter failed too: {why})") from exc
        return path
    if available("onnxscript") and not _dynamic_ok(model, inputs, path, input_names, axes):
        # the trace baked a shape into the graph (nn.MultiheadAttention's reshapes do): the dynamo
        # exporter keeps symbolic shapes; keep its graph when it runs at other shapes
        other = path.with_name(path.stem + ".dynamo.onnx")
        try:
            _export_dynamo(model, inputs, other, input_names, output_names, axes)
            if _dynamic_ok(model, inputs, other, input_names, axes):
                other.replace(path)
        except Exception:  # noqa: BLE001 - keep the traced graph: it runs at the example's shapes
            pass
        other.unlink(missing_ok=True)
    return path


def _dynamic_ok(model: Any, inputs: tuple[Any, ...], path: Path, names: list[str],
                axes: dict[str, dict[int, str]]) -> bool:
    """True when the graph at `path` runs at other shapes along its dynamic axes and agrees with `model`.

    The probe tiles every input twice along each dynamic axis (batch, sequence); a model that cannot run
    the probe itself (say, longer than its position table) is not judged (True).
    """
    torch = require("torch")
    probe = []
    for name, x in zip(names, inputs, strict=True):
        reps = [2 if a in axes.get(name, {}) else 1 for a in range(x.ndim)]
        probe.append(x.repeat(*reps) if x.ndim else x)
    try:
        with _quiet(), _no_fast_paths(), torch.no_grad():
            want = hf.first_tensor(model(*probe)).float().numpy()
    except Exception:  # noqa: BLE001 - the model itself refuses the probe: nothing to compare
        return True
    try:
        ort = require("onnxruntime", extra="optimize")
        so = ort.SessionOptions()
        so.log_severity_level = 4  # a failing Reshape is the expected answer here, not an error to print
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {n: x.numpy() for n, x in zip(names, probe, strict=True)}
        got = sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})[0]
    except Exception:  # noqa: BLE001 - e.g. a Reshape to the traced length
        return False
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=1e-3, atol=1e-4, equal_nan=True))


@contextlib.contextmanager
def _no_fast_paths() -> Iterator[None]:
    """Switch off PyTorch's fused transformer inference path (nested tensors,
    `_transformer_encoder_layer_fwd`, `_native_multi_head_attention`), which has no ONNX mapping; the
    unfused ops compute the same."""
    torch = require("torch")
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):  # torch < 2.1: no switch to flip
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters warn about tracing and print whole graphs on failure; the ExportError says enough."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_dynamo(model: Any, inputs: tuple[Any, ...], path: Path, input_names: list[str],
                   output_names: list[str], axes: dict[str, dict[int, str]]) -> None:
    """torch's dynamo-based exporter, with the same dynamic axes (as `Dim.AUTO`)."""
    torch = require("torch")
    auto = torch.export.Dim.AUTO
    shapes = tuple({axis: auto for axis in axes.get(n, {})} for n in input_names)
    with _quiet(), _no_fast_paths(), torch.no_grad():
        program = torch.onnx.export(model, inputs, dynamo=True, input_names=input_names,
                                    output_names=output_names, dynamic_shapes=shapes, verbose=False)
        program.save(str(path))


def _export_error(model: Any, inputs: tuple[Any, ...], exc: Exception, opset: int) -> ExportError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    m = _OP_RE.search(str(exc))
    op = m.group(1) if m else None
    where = locate_op(model, inputs, op) if op else None
    place = f" called from module '{where}'" if where else ""
    what = f"op '{op}'{place}" if op else f"{type(exc).__name__}"
    if "Guard failed" in str(exc):
        return ExportError(
            f"ONNX export failed: the model was saved with static shapes and the example differs ({text}). "
            "Fix: save it with torch.export.export(model, args, dynamic_shapes={...: {0: torch.export.Dim("
            "'batch')}}), or pass example inputs of the saved shape."
        )
    return ExportError(
        f"ONNX export (opset {opset}) failed on {what} of {type(model).__name__}: {text}. Fix: replace that "
        "call with ops ONNX supports (or wrap it in a custom torch.autograd.Function with a `symbolic`), "
        "try a newer opset, or export the model yourself and pass the .onnx file to cpuwise optimize."
    )


def locate_op(model: Any, inputs: tuple[Any, ...], op: str) -> str | None:
    """The dotted path of the innermost module that calls aten `op` (e.g. 'aten::erfinv'), or None."""
    torch = require("torch")
    # lazy: torch is heavy and optional; this runs only when an export failed
    from torch.utils._python_dispatch import TorchDispatchMode

    wanted = op.split("::")[-1]
    stack: list[str] = []
    found: list[str] = []
    handles = []

    def enter(name: str) -> Any:
        def hook(_m: Any, _i: Any) -> None:
            stack.append(name)

        return hook

    def leave(_m: Any, _i: Any, _o: Any) -> None:  # must return None: a value would replace the output
        stack.pop()

    for name, mod in model.named_modules():
        handles.append(mod.register_forward_pre_hook(enter(name)))
        handles.append(mod.register_forward_hook(leave))

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if not found and func.__name__.split(".")[0] == wanted:
                found.append(stack[-1] if stack else "")
            return func(*args, **(kwargs or {}))

    try:
        with torch.no_grad(), Recorder():
            model(*inputs)
    except Exception:  # noqa: BLE001 - locating is best effort; the export error is what matters
        pass
    finally:
        for h in handles:
            h.remove()
    if not found:
        return None
    return found[0] or "<root>"
