"""ONNX Runtime: the settings grid and thread counts (pure), INT8 recipes for the CPU, the quantizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cpuwise.optimize.export import export_onnx
from cpuwise.optimize.runtimes import onnxruntime as q
from cpuwise.optimize.runtimes.onnxruntime import SessionSettings, settings_grid, sweep_threads

onnx = pytest.importorskip("onnx")


def op_types(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.fixture(scope="module")
def mlp_onnx(
    digits_mlp: tuple[Any, np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    model, x, _ = digits_mlp
    return export_onnx(model, (x[:2],), tmp_path_factory.mktemp("q") / "mlp.onnx", input_names=["x"])


def test_settings_grid_and_sweep() -> None:
    grid = settings_grid(2, quick=True)
    assert {s.intra_op_threads for s in grid} == {1, 2}
    assert SessionSettings(intra_op_threads=2, spinning=False) in grid
    # one thread without spinning only as one request per core (ORT "streams"): spinning is moot then
    assert all(s.requests == 2 for s in grid if s.intra_op_threads == 1 and not s.spinning)
    assert any(s.execution_mode == "parallel" for s in settings_grid(8))
    assert sweep_threads(6) == [1, 2, 4, 6] and sweep_threads(1) == [1]
    s = SessionSettings(graph_level="basic", intra_op_threads=3, spinning=False)
    assert SessionSettings.from_dict(s.to_dict()) == s


def test_recipes_without_vnni_lead_with_saturation_safe_ones() -> None:
    rs = q.recipes_for(vnni=False, have_calibration=True)
    assert rs[0].reduce_range and rs[0].per_channel
    assert any(r.weight_type == "u8" for r in rs)
    assert all(r.reduce_range for r in rs if r.mode == "static")
    assert q.ORT_DEFAULT not in q.recipes_for(vnni=False, have_calibration=False, include_default=False)
    assert q.recipes_for(vnni=True, have_calibration=True)[0] == q.ORT_DEFAULT


def test_static_without_calibration_falls_back_to_dynamic(mlp_onnx: Path, tmp_path: Path) -> None:
    dst = tmp_path / "s.onnx"
    note = q.quantize(mlp_onnx, dst, q.STATIC_QDQ_RR, calibration=None)
    assert "fell back to dynamic" in note
    ops = op_types(dst)
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops
    assert "QuantizeLinear" not in ops


def test_static_with_calibration_writes_qdq(
    mlp_onnx: Path, tmp_path: Path, digits_mlp: tuple[Any, np.ndarray, np.ndarray]
) -> None:
    _, x, _ = digits_mlp
    dst = tmp_path / "s.onnx"
    note = q.quantize(
        mlp_onnx, dst, q.STATIC_QDQ_RR, calibration=[{"x": x[i : i + 8]} for i in range(0, 64, 8)]
    )
    assert note == "" and {"QuantizeLinear", "DequantizeLinear"} <= op_types(dst)


def test_dynamic_int8_stays_close_to_fp32(
    mlp_onnx: Path, tmp_path: Path, digits_mlp: tuple[Any, np.ndarray, np.ndarray]
) -> None:
    from cpuwise.optimize.runtimes.onnxruntime import make_session, ort_runner

    _, x, _ = digits_mlp
    dst = tmp_path / "d.onnx"
    q.quantize(mlp_onnx, dst, q.SAFE_S8)
    ref = ort_runner(make_session(mlp_onnx))({"x": x})
    out = ort_runner(make_session(dst))({"x": x})
    assert (ref.argmax(1) == out.argmax(1)).mean() > 0.95


def test_keep_fp32_leaves_one_weight_group_in_float(mlp_onnx: Path, tmp_path: Path) -> None:
    groups = q.weight_groups(mlp_onnx)
    assert len(groups) == 2 and all(len(v) == 1 for v in groups.values())  # two Linear layers
    first = sorted(groups)[0]
    r = q.keep_fp32(q.SAFE_S8, first, 1)
    assert r.keep_fp32 == first and "kept FP32" in r.name
    dst = tmp_path / "k.onnx"
    q.quantize(mlp_onnx, dst, r)
    ops = {n.name: n.op_type for n in onnx.load(str(dst)).graph.node}
    kept, other = groups[first][0], groups[sorted(groups)[1]][0]
    assert ops.get(kept) == "Gemm" or ops.get(f"{kept}_MatMul") == "MatMul"  # still float
    assert ops.get(f"{other}_MatMul_quant") == "MatMulInteger"  # the other layer is INT8
