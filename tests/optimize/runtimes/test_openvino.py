"""OpenVINO as a Runtime: settings and their grid, runners (one feed and several in flight), model I/O,
NNCF INT8, and an artifact that records it and is served by load()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cpuwise.optimize as co
from cpuwise.optimize import runtimes
from cpuwise.optimize.runtimes.openvino import OpenVino, OvSettings, settings_grid

pytest.importorskip("openvino")
pytest.importorskip("nncf")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mlp_onnx(digits_mlp: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    from cpuwise.optimize.export import export_onnx

    model, x, _ = digits_mlp
    path = export_onnx(model, (torch.from_numpy(x[:2]),), tmp_path_factory.mktemp("ov") / "m.onnx",
                       input_names=["x"])
    return path, x


def test_openvino_is_registered_and_installed() -> None:
    assert runtimes.get("openvino").title == "OpenVINO"
    assert [rt.name for rt in runtimes.installed()] == ["onnxruntime", "openvino"]


def test_settings_round_trip_and_name_their_precision() -> None:
    s = OvSettings(hint="THROUGHPUT", streams=2, threads=2, precision="bf16", requests=2)
    assert OvSettings.from_dict(s.to_dict()) == s
    assert not s.lossless and OvSettings().lossless
    assert s.config()["NUM_STREAMS"] == "2" and s.config()["INFERENCE_PRECISION_HINT"] == "bf16"


def test_grid_has_streams_on_several_cores_and_bf16_only_where_native() -> None:
    grid = settings_grid(2, bf16=False)
    assert {s.precision for s in grid} == {"f32"}
    assert any(s.hint == "THROUGHPUT" and s.streams == 2 and s.requests == 2 for s in grid)
    assert {s.precision for s in settings_grid(2, bf16=True)} == {"f32", "bf16"}
    assert all(s.hint == "LATENCY" for s in settings_grid(1))


def test_runner_matches_onnxruntime_one_feed_and_many_in_flight(mlp_onnx: tuple[Path, np.ndarray]) -> None:
    path, x = mlp_onnx
    ort = runtimes.get("onnxruntime")
    want = ort.runner(ort.session(path))({"x": x})
    ov = OpenVino()
    for s in (OvSettings(), OvSettings(hint="THROUGHPUT", streams=2, threads=2, requests=2)):
        run = ov.runner(ov.session(path, s))
        np.testing.assert_allclose(run({"x": x}), want, rtol=1e-4, atol=1e-5)
        parts = run.map([{"x": x[i:i + 16]} for i in range(0, len(x), 16)])
        np.testing.assert_allclose(np.concatenate(parts), want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(run({"x": x}), want, rtol=1e-4, atol=1e-5)  # inputs were not written to


def test_model_io_uses_the_onnx_type_names(mlp_onnx: tuple[Path, np.ndarray]) -> None:
    inputs, output = OpenVino().model_io(mlp_onnx[0])
    assert inputs == [{"name": "x", "dtype": "tensor(float)", "shape": [None, 64]}] and output


def test_nncf_static_int8_writes_ir_that_agrees(mlp_onnx: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    from cpuwise.optimize.runtimes.openvino import STATIC, WEIGHTS

    path, x = mlp_onnx
    ov = OpenVino()
    want = ov.runner(ov.session(path))({"x": x}).argmax(1)
    for recipe in (STATIC, WEIGHTS):
        dst = tmp_path / f"{recipe.mode}.xml"
        ov.quantize(path, dst, recipe, [{"x": x[i:i + 8]} for i in range(0, 64, 8)])
        assert dst.is_file() and dst.with_suffix(".bin").is_file()
        got = ov.runner(ov.session(dst))({"x": x}).argmax(1)
        assert (got == want).mean() > 0.9


def test_an_openvino_artifact_is_saved_and_served(digits_mlp: Any, tmp_path: Path) -> None:
    model, x, _ = digits_mlp
    result = co.optimize(model, (x[:2],), eval_inputs=(x[:64],), task="classifier", max_drop=0.05,
                         out_dir=tmp_path / "o", quick=True, passes="session,int8", runtimes=["openvino"],
                         measure_reference=False)
    assert result.chosen is not None and result.chosen.runtime == "openvino"
    pred = co.load(tmp_path / "o")
    assert pred.config.runtime == "openvino"
    assert (pred.predict(x[:64]).argmax(1) == model(torch.from_numpy(x[:64])).argmax(1).numpy()).mean() > 0.9


def test_nncf_accuracy_aware_int8_returns_layers_to_fp32_until_the_budget_holds(tmp_path: Path) -> None:
    from cpuwise.optimize.passes.int8 import _validator, calibration_feeds
    from cpuwise.optimize.runtimes.openvino import AWARE, STATIC
    from cpuwise.optimize.search.choose import Budget
    from cpuwise.testing.passes import PassCase

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 32)).eval()
    with torch.no_grad():
        model[2].weight[:, 0] = 6.0  # an outlier column: plain static INT8 of this layer breaks the budget
    x = np.random.default_rng(0).standard_normal((128, 64)).astype(np.float32)
    case = PassCase.build(model, (x,), tmp_path / "case", task="embedding", max_drop=0.003,
                          runtime_names=["openvino"], quick=False)
    plan, judge, basis = case.setup.plan, case.setup.judge, case.basis
    ov, calib = OpenVino(), calibration_feeds(judge.feed, judge.spec)
    ov.quantize(basis.graph, tmp_path / "plain.xml", STATIC, calib)
    ov.quantize(basis.graph, tmp_path / "aware.xml", AWARE, calib, validate=_validator(basis, plan, judge),
                validation=[judge.feed])
    budget = Budget(0.003)
    plain = judge.score_file(tmp_path / "plain.xml", basis.settings, basis.io, ov)
    aware = judge.score_file(tmp_path / "aware.xml", basis.settings, basis.io, ov)
    assert 1 - aware.value <= budget.max_drop and aware.value > plain.value
