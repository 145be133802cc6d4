"""optimize() end to end on a small real model: budget respected, NaN dropped, impossible budget, artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cpuwise.optimize as co
from cpuwise.errors import BudgetError
from cpuwise.optimize.evaluate import accuracy_metric
from cpuwise.optimize.passes import PassContext, PassResult, TorchPass

torch = pytest.importorskip("torch")


class NaNPass(TorchPass):
    """A pass whose model outputs NaN: the search must drop it and say so."""

    name = "nanpass"

    def applies(self, model: Any, ctx: PassContext) -> bool:
        return True

    def run(self, model: Any, ctx: PassContext) -> PassResult:
        class Broken(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: Any) -> Any:
                return self.inner(x) * torch.log(x.sum(1, keepdim=True) * 0 - 1)  # log(-1) = NaN

        return PassResult(Broken(model), notes=["broken on purpose"])


class CrashPass(NaNPass):
    name = "crashpass"

    def run(self, model: Any, ctx: PassContext) -> PassResult:
        raise RuntimeError("pass exploded")


@pytest.fixture(scope="module")
def result(digits_mlp: tuple[Any, np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Any:
    model, x, y = digits_mlp
    out = tmp_path_factory.mktemp("opt") / "mlp-opt"
    return co.optimize(
        model,
        (x[:2],),
        eval_inputs=(x,),
        eval_labels=y,
        metric=accuracy_metric,
        task="classifier",
        max_drop=0.02,
        out_dir=out,
        quick=True,
        passes=["session", "int8", NaNPass(), CrashPass()],
    )


def test_chosen_is_within_budget(result: Any) -> None:
    assert result.within_budget and result.chosen is not None and result.chosen.deployable
    assert result.reference_score.value - result.chosen.score.value <= 0.02
    assert any(r["chosen"] for r in result.rows)


def test_nan_and_crashing_candidates_are_dropped_and_reported(result: Any) -> None:
    dropped = {c.name.split(" ")[0]: c.dropped for c in result.candidates if c.dropped}
    assert "NaN" in dropped["nanpass"] and "pass exploded" in dropped["crashpass"]
    assert result.chosen.technique not in ("nanpass", "crashpass")
    assert "nanpass" in " ".join(result.notes) and "DROPPED" in result.markdown


def test_artifact_loads_and_predicts_like_the_chosen_model(result: Any, digits_mlp: Any) -> None:
    model, x, _ = digits_mlp
    folder = Path(result.out_dir)
    assert (folder / "model.onnx").is_file() and (folder / "cpuwise.json").is_file()
    assert "| technique |" in (folder / "report.md").read_text()
    p = co.load(folder)
    y1 = p.predict(x[:20])
    y2 = p.predict((x[:20],))
    assert y1.shape == (20, 10) and np.allclose(y1, y2)
    assert p.cache is not None and p.cache.hits == 20
    ref = model(torch.from_numpy(x[:20])).detach().numpy()
    assert (y1.argmax(1) == ref.argmax(1)).mean() >= 0.9


def test_impossible_budget_keeps_fp32_and_strict_raises(
    digits_mlp: Any, tmp_path: Path, reference_only_metric: Any
) -> None:
    model, x, y = digits_mlp
    kw: dict[str, Any] = dict(
        eval_inputs=(x[:64],),
        eval_labels=y[:64],
        max_drop=0.0,
        quick=True,
        passes=["int8"],
        out_dir=tmp_path / "o",
    )
    r = co.optimize(model, **kw, metric=reference_only_metric())
    assert not r.within_budget and "budget impossible" in r.message
    assert r.chosen is not None and r.chosen.fp32 and (tmp_path / "o" / "model.onnx").is_file()
    with pytest.raises(BudgetError, match="budget impossible"):
        co.optimize(model, **kw, metric=reference_only_metric(), strict=True)


def test_onnx_input_with_dynamic_padding_and_cli_roundtrip(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cpuwise.cli.app import build_app
    from cpuwise.optimize.export import export_onnx

    class Pool(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.emb = torch.nn.Embedding(64, 16)
            self.lin = torch.nn.Linear(16, 16)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            m = attention_mask.unsqueeze(-1).float()
            return (self.lin(self.emb(input_ids)) * m).sum(1) / m.sum(1)

    rng = np.random.default_rng(0)
    lens = rng.integers(2, 20, 48)
    ids = np.zeros((48, 64), np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lens):
        ids[i, :n], mask[i, :n] = rng.integers(1, 64, n), 1
    onnx_path = export_onnx(
        Pool().eval(),
        (ids[:2], mask[:2]),
        tmp_path / "pool.onnx",
        input_names=["input_ids", "attention_mask"],
    )
    np.savez(tmp_path / "data.npz", input_ids=ids, attention_mask=mask)
    runner = CliRunner()
    res = runner.invoke(
        build_app(),
        [
            "optimize",
            str(onnx_path),
            "--data",
            str(tmp_path / "data.npz"),
            "--task",
            "embedding",
            "--quick",
            "--passes",
            "session,io",
            "--out",
            str(tmp_path / "cli-opt"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    r = co.load(tmp_path / "cli-opt")
    if r.config.io.dynamic_padding:  # trimmed batches must give the padded answers
        assert r.config.sequence is not None and r.config.sequence.mask == "attention_mask"
    ref = Pool().eval()(torch.from_numpy(ids), torch.from_numpy(mask)).detach().numpy()
    assert np.allclose(r.predict({"input_ids": ids, "attention_mask": mask}), ref, atol=1e-4)
    bench = runner.invoke(
        build_app(),
        ["bench", str(tmp_path / "cli-opt"), "--threads", "1", "--data", str(tmp_path / "data.npz")],
    )
    assert bench.exit_code == 0 and "samples/s" in bench.output, bench.output
    bad = runner.invoke(build_app(), ["bench", str(tmp_path / "cli-opt"), "--threads", "1"])
    assert bad.exit_code == 2 and "--data" in bad.output  # random ids overflow the tiny vocabulary


def test_cli_optimizes_a_saved_pt2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cpuwise.cli.app import build_app

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    torch.export.save(torch.export.export(m, (torch.randn(8, 16),)), tmp_path / "m.pt2")
    args = [
        "optimize",
        str(tmp_path / "m.pt2"),
        "--task",
        "classifier",
        "--quick",
        "--passes",
        "session",
        "--out",
        str(tmp_path / "o"),
    ]
    res = CliRunner().invoke(build_app(), args)
    assert res.exit_code == 0, res.output
    p = co.load(tmp_path / "o")
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    assert np.allclose(p.predict(x), m(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
