"""Issue 12 (item 4): predict() checks its inputs: count, rank, feature size, dtype, rows; each error names
the input, what was expected and what was found (never a raw runtime InvalidArgument)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cpuwise.optimize as co
from cpuwise.errors import ConfigError

torch = pytest.importorskip("torch")


class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(50, 6)
        self.lin = torch.nn.Linear(6, 3)

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        m = attention_mask.unsqueeze(-1).float()
        return self.lin((self.emb(input_ids) * m).sum(1) / m.sum(1))


@pytest.fixture(scope="module")
def pred(token_rows: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    ids, mask = token_rows(16, 10, 50)
    out = tmp_path_factory.mktemp("p") / "art"
    co.optimize(TwoInputs().eval(), (ids[:2], mask[:2]), eval_inputs=(ids, mask), out_dir=out, quick=True,
                passes="io", measure_reference=False)
    return co.load(out, cache=False)


@pytest.fixture(scope="module")
def rows(token_rows: Any) -> tuple[np.ndarray, np.ndarray]:
    return token_rows(4, 10, 50)


def test_good_inputs_predict(pred: Any, rows: Any) -> None:
    ids, mask = rows
    assert pred.predict((ids, mask)).shape == (4, 3)
    assert pred.predict({"input_ids": ids, "attention_mask": mask}).shape == (4, 3)
    assert pred.predict((ids.astype(np.int32), mask.astype(bool))).shape == (4, 3)  # exact casts are fine


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda i, m: (i,), r"expected 2 input\(s\) \['input_ids', 'attention_mask'\], found 1"),
        (lambda i, m: (i, m, m), r"expected 2 input\(s\).*found 3"),
        (lambda i, m: {"input_ids": i}, r"missing input 'attention_mask'"),
        (lambda i, m: {"input_ids": i, "attention_mask": m, "x": m}, r"unexpected input 'x'"),
        (lambda i, m: (i[0], m[0]), r"input 'input_ids': expected shape \(N, \?\) \(rank 2\), found \(10,\)"),
        (lambda i, m: (i[..., None], m), r"input 'input_ids': expected shape .*found \(4, 10, 1\)"),
        (lambda i, m: (i[:0], m[:0]), r"input 'input_ids': expected at least one row, found shape \(0, 10\)"),
        (lambda i, m: (i.astype(np.float32) + 0.5, m), r"input 'input_ids': expected int64.*found float32"),
        (lambda i, m: (i.astype(str), m), r"input 'input_ids': expected int64.*found <U"),
        (lambda i, m: (i, m[:2]), r"same number of rows"),
    ],
    ids=["too-few", "too-many", "missing", "unexpected", "rank-low", "rank-high", "empty", "float-for-int",
         "strings", "rows-differ"],
)
def test_bad_inputs_are_config_errors_naming_the_input(pred: Any, rows: Any, make: Any, match: str) -> None:
    ids, mask = rows
    with pytest.raises(ConfigError, match=match):
        pred.predict(make(ids, mask))


def test_a_wrong_feature_size_names_the_expected_dimension(digits_mlp: Any, tmp_path: Path) -> None:
    model, x, _ = digits_mlp
    co.optimize(model, (x[:2],), eval_inputs=(x[:32],), out_dir=tmp_path / "a", quick=True, passes="session",
                measure_reference=False)
    with pytest.raises(ConfigError, match=r"expected shape \(N, 64\).*found \(3, 63\)"):
        co.load(tmp_path / "a").predict(np.zeros((3, 63), np.float32))
