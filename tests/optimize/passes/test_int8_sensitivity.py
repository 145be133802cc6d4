"""INT8 per-layer sensitivity: when a whole-model recipe nearly fits, the groups that cost most are found by
measuring each one kept in FP32, and the worst are kept in FP32 until the budget holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cpuwise.optimize.passes.int8 import quantize_and_measure
from cpuwise.optimize.runtimes.onnxruntime import ORT_DEFAULT
from cpuwise.optimize.search.choose import within
from cpuwise.testing.passes import PassCase

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_layer_with_an_outlier_is_kept_in_fp32_and_the_rest_stays_int8(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 32)).eval()
    with torch.no_grad():
        model[2].weight[:, 0] = 6.0  # one large input column: per-tensor INT8 of this layer loses precision
    x = np.random.default_rng(0).standard_normal((128, 64)).astype(np.float32)
    case = PassCase.build(model, (x,), tmp_path, task="embedding", max_drop=0.003,
                          runtime_names=["onnxruntime"], quick=False)
    plan, judge = case.setup.plan, case.setup.judge
    out, winner = quantize_and_measure(case.basis, case.basis.graph, [ORT_DEFAULT], plan, judge)
    whole = out.candidates[0]
    assert whole.ok and not within(whole, judge.reference_score, plan.budget)  # the whole model breaks it
    ranked = next(n for n in out.notes if n.startswith("int8 sensitivity"))
    assert ranked.index("Gemm 32x48") < ranked.index("Gemm 48x64")  # the outlier layer ranks first
    kept = out.candidates[-1]
    assert "1 most sensitive group kept FP32" in kept.name
    assert within(kept, judge.reference_score, plan.budget)
    assert winner is not None and winner.keep_fp32 == "Gemm 32x48"
