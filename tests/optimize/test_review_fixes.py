"""Regressions from the optimize code review: the impossible-budget fallback, strict, out_dir=None."""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cpuwise.optimize as co
from cpuwise.errors import BudgetError, ConfigError
from cpuwise.optimize.bench import BenchResult
from cpuwise.optimize.evaluate import Score
from cpuwise.optimize.passes import PassContext, PassResult, TorchPass
from cpuwise.optimize.search.choose import Budget, Candidate, choose

torch = pytest.importorskip("torch")


def cand(name: str, technique: str, p50: float, score: float, *, fp32: bool) -> Candidate:
    return Candidate(
        name, technique, fp32=fp32, bench=BenchResult(p50, p50, 100.0, 32), score=Score(score, "s")
    )


def test_impossible_budget_never_falls_back_to_a_lossy_model() -> None:
    onnx = cand("onnx", "onnx", 10, 0.9999, fp32=True)
    prune = cand("prune", "prune", 3, 0.60, fp32=False)
    c = choose([onnx, prune], 1.0, Budget(0.0), "latency")
    assert not c.within_budget and c.chosen is onnx and "budget impossible" in c.message


def test_impossible_budget_without_lossless_keeps_the_most_accurate() -> None:
    int8 = cand("int8", "int8", 2, 0.8, fp32=False)
    prune = cand("prune", "prune", 1, 0.6, fp32=False)
    c = choose([prune, int8], 1.0, Budget(0.0), "latency")
    assert not c.within_budget and c.chosen is int8 and "most accurate" in c.message


class HalvePass(TorchPass):
    """Changes the model's outputs a lot (like an aggressive prune): never lossless."""

    name = "halve"

    def applies(self, model: Any, ctx: PassContext) -> bool:
        return True

    def run(self, model: Any, ctx: PassContext) -> PassResult:
        import copy

        m = copy.deepcopy(model)
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(0.5)
        return PassResult(m, notes=["halved every weight"])


def _kw(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    kw: dict[str, Any] = dict(eval_inputs=(x[:64],), task="generic", max_drop=0.0, quick=True)
    kw.update(extra)
    return kw


def test_torch_pass_candidates_are_not_lossless_fallbacks(digits_mlp: Any, tmp_path: Path) -> None:
    model, x, _ = digits_mlp
    r = co.optimize(model, **_kw(x, passes=[HalvePass()], out_dir=tmp_path / "o"))
    halved = [c for c in r.candidates if c.technique == "halve"]
    assert halved and all(not c.fp32 for c in halved)
    assert not r.within_budget and r.chosen is not None and r.chosen.technique != "halve" and r.chosen.fp32


def test_relative_budget_with_a_zero_reference_score_is_a_config_error(
    digits_mlp: Any, tmp_path: Path
) -> None:
    model, x, _ = digits_mlp
    with pytest.raises(ConfigError, match="absolute max_drop"):
        co.optimize(model, **_kw(x, max_drop="1%", passes=["io"], out_dir=tmp_path / "o"))


def test_strict_does_not_save_the_out_of_budget_artifact(digits_mlp: Any, tmp_path: Path) -> None:
    model, x, _ = digits_mlp
    out = tmp_path / "o"
    with pytest.raises(BudgetError, match="budget impossible"):
        co.optimize(model, **_kw(x, passes=["io"], out_dir=out, strict=True))
    assert not (out / "model.onnx").exists() and not (out / "cpuwise.json").exists()


def test_out_dir_none_keeps_only_the_chosen_artifact(
    digits_mlp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, x, _ = digits_mlp
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = co.optimize(model, **_kw(x, max_drop=1.0, passes=["int8"], out_dir=None))
    made = list(tmp_path.glob("cpuwise-optimize-*"))
    assert len(made) == 1 and r.out_dir == made[0] and r.chosen is not None
    onnx_files = sorted(p.name for p in made[0].rglob("*.onnx"))
    assert onnx_files == ["model.onnx"] and not (made[0] / "candidates").exists()
    assert r.chosen.onnx_path is not None and Path(r.chosen.onnx_path).is_file()
    y = co.load(r.out_dir).predict(x[:4])
    assert np.asarray(y).shape == (4, 10)
    del r
    gc.collect()
    assert not made[0].exists()


def test_out_dir_none_strict_leaves_nothing(
    digits_mlp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, x, _ = digits_mlp
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(BudgetError):
        co.optimize(model, **_kw(x, passes=["io"], out_dir=None, strict=True))
    assert list(tmp_path.glob("cpuwise-optimize-*")) == []
