"""An impossible budget end to end: never a lossy fallback, strict saves nothing, a relative budget needs a
non-zero reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cpuwise.optimize as co
from cpuwise.errors import BudgetError, ConfigError
from cpuwise.optimize.passes import PassContext, PassResult, TorchPass

torch = pytest.importorskip("torch")


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


def test_torch_pass_candidates_are_not_lossless_fallbacks(
    digits_mlp: Any, reference_only_metric: Any, tmp_path: Path
) -> None:
    model, x, y = digits_mlp
    r = co.optimize(
        model,
        **_kw(
            x,
            eval_labels=y[:64],
            metric=reference_only_metric(),
            passes=[HalvePass()],
            out_dir=tmp_path / "o",
        ),
    )
    halved = [c for c in r.candidates if c.technique == "halve"]
    assert halved and all(not c.fp32 for c in halved)
    assert not r.within_budget and r.chosen is not None and r.chosen.technique != "halve" and r.chosen.fp32


def test_relative_budget_with_a_zero_reference_score_is_a_config_error(
    digits_mlp: Any, tmp_path: Path
) -> None:
    model, x, _ = digits_mlp
    with pytest.raises(ConfigError, match="absolute max_drop"):
        co.optimize(model, **_kw(x, max_drop="1%", passes=["io"], out_dir=tmp_path / "o"))


def test_strict_does_not_save_the_out_of_budget_artifact(
    digits_mlp: Any, reference_only_metric: Any, tmp_path: Path
) -> None:
    model, x, y = digits_mlp
    out = tmp_path / "o"
    with pytest.raises(BudgetError, match="budget impossible"):
        co.optimize(
            model,
            **_kw(
                x, eval_labels=y[:64], metric=reference_only_metric(), passes=["io"], out_dir=out, strict=True
            ),
        )
    assert not (out / "model.onnx").exists() and not (out / "cpuwise.json").exists()
