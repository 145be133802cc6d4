"""The search loop: each pass builds on the fastest lossless candidate; each candidate has its file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

import cpuwise.optimize as co
from cpuwise.optimize.bench import BenchResult
from cpuwise.optimize.evaluate import Score
from cpuwise.optimize.io import IOConfig
from cpuwise.optimize.passes import Basis, PassContext, PassResult, Plan, TorchPass
from cpuwise.optimize.search.choose import Budget, Candidate

torch = pytest.importorskip("torch")


def cand(name: str, p50: float, *, fp32: bool = True, dynamic: bool = False) -> Candidate:
    return Candidate(
        name, name, fp32=fp32, io=IOConfig(dynamic_padding=dynamic),
        bench=BenchResult(p50, p50, 1000 / p50, 32), score=Score(1.0, "s"),
    )


def test_the_basis_moves_to_the_fastest_lossless_candidate(tmp_path: Path) -> None:
    default = cand("default", 10)
    basis = Basis(graph=tmp_path / "g.onnx", best=default, settings="defaults", io=default.io)
    padded, int8 = cand("padded", 5, dynamic=True), cand("int8", 1, fp32=False)
    moved = basis.with_best([padded, int8], "latency")
    assert moved.best is padded and moved.io.dynamic_padding and moved.settings == "defaults"
    assert basis.with_best([cand("slower", 20)], "latency") is basis


def test_model_paths_never_repeat_within_a_search(tmp_path: Path) -> None:
    plan = Plan(work=tmp_path, names=["x"], task="generic", budget=Budget(0.01))
    assert [plan.model_path("prune").name for _ in range(3)] == ["prune.onnx", "prune-2.onnx", "prune-3.onnx"]


class Scale(TorchPass):
    """Multiplies every weight by `factor`: two instances make two different models."""

    name = "scale"

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def applies(self, model: Any, ctx: PassContext) -> bool:
        return True

    def run(self, model: Any, ctx: PassContext) -> PassResult:
        m = copy.deepcopy(model)
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(self.factor)
        return PassResult(m, params={"factor": self.factor})


def test_two_instances_of_one_pass_keep_their_own_model_files(digits_mlp: Any, tmp_path: Path) -> None:
    model, x, _ = digits_mlp
    two = [Scale(0.5), Scale(2.0)]
    r = co.optimize(model, eval_inputs=(x[:32],), max_drop=1.0, quick=True, passes=two, out_dir=tmp_path)
    scaled = [c for c in r.candidates if c.technique == "scale"]
    assert len(scaled) == 2 and scaled[0].model_path != scaled[1].model_path
    assert Path(scaled[0].model_path).read_bytes() != Path(scaled[1].model_path).read_bytes()
