"""Issue 12 (item 5): in "auto", distillation runs only with train_inputs and when its estimated training
fits the time left; otherwise it is listed as skipped with the reason and the estimate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cpuwise.optimize.passes.distill import DistillPass
from cpuwise.testing.passes import PassCase, check_pass

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _case(digits_mlp: Any, tmp_path: Path, **prepare: Any) -> PassCase:
    model, x, _ = digits_mlp
    return PassCase.build(model, (x[:96],), tmp_path, task="classifier", max_drop=0.05,
                          runtime_names=["onnxruntime"], **prepare)


def test_auto_without_train_inputs_skips_distillation_and_says_why(digits_mlp: Any, tmp_path: Path) -> None:
    out = check_pass(DistillPass(epochs=1), _case(digits_mlp, tmp_path, auto=True))
    assert not out.candidates
    assert out.notes and out.notes[0].startswith("distill: skipped: no train_inputs")


def test_auto_skips_distillation_that_does_not_fit_the_time_left(digits_mlp: Any, tmp_path: Path) -> None:
    _, x, _ = digits_mlp
    case = _case(digits_mlp, tmp_path, auto=True, train_inputs=(x[:96],), time_budget_s=0.0)
    out = check_pass(DistillPass(epochs=50), case)
    assert not out.candidates
    note = out.notes[0]
    assert note.startswith("distill: skipped: 50 epochs of") and "ms/step" in note and "need about" in note


def test_auto_distils_when_it_has_train_inputs_and_time(digits_mlp: Any, tmp_path: Path) -> None:
    _, x, _ = digits_mlp
    case = _case(digits_mlp, tmp_path, auto=True, train_inputs=(x[:96],), time_budget_s=300.0)
    out = check_pass(DistillPass(epochs=1), case)
    assert any(c.technique == "distill" and c.ok for c in out.candidates)


def test_distill_asked_for_by_name_runs_on_the_eval_rows(digits_mlp: Any, tmp_path: Path) -> None:
    out = check_pass(DistillPass(epochs=1), _case(digits_mlp, tmp_path, auto=False))
    assert any(c.technique == "distill" and c.ok for c in out.candidates)
