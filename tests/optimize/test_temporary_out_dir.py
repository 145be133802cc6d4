"""optimize(out_dir=None): a temporary folder that holds only the chosen artifact and lives as long as the
Result."""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cpuwise.optimize as co
from cpuwise.errors import BudgetError

pytest.importorskip("torch")


def _kw(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    kw: dict[str, Any] = dict(eval_inputs=(x[:64],), task="generic", max_drop=0.0, quick=True)
    kw.update(extra)
    return kw


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
    assert r.chosen.model_path is not None and Path(r.chosen.model_path).is_file()
    y = co.load(r.out_dir).predict(x[:4])
    assert np.asarray(y).shape == (4, 10)
    del r
    gc.collect()
    assert not made[0].exists()


def test_out_dir_none_strict_leaves_nothing(
    digits_mlp: Any, reference_only_metric: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, x, y = digits_mlp
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(BudgetError):
        co.optimize(
            model,
            **_kw(
                x,
                eval_labels=y[:64],
                metric=reference_only_metric(),
                passes=["io"],
                out_dir=None,
                strict=True,
            ),
        )
    assert list(tmp_path.glob("cpuwise-optimize-*")) == []
