"""Selecting passes by name: the registered order, the caller's own instances, and unknown names as errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cpuwise.optimize as co
from cpuwise.errors import ConfigError
from cpuwise.optimize import passes
from cpuwise.optimize.passes import REGISTERED, Basis, Outcome, Pass, Plan, select
from cpuwise.optimize.passes.prune import PrunePass
from cpuwise.optimize.search.judge import Judge


class Custom(Pass):
    name = "custom"

    def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
        return Outcome(notes=["custom: nothing to do"])


def test_every_pass_module_is_registered() -> None:
    folder = Path(passes.__file__).parent
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")} - {"base", "torchpass"}
    assert modules == set(REGISTERED)


def test_auto_runs_every_registered_pass_in_order() -> None:
    assert [p.name for p in select("auto")] == list(REGISTERED)


def test_names_run_in_registered_order_and_instances_take_their_place() -> None:
    mine = PrunePass(ratio=0.5)
    chosen = select([Custom(), "int8", mine, "io", "int8"])
    assert [p.name for p in chosen] == ["io", "int8", "prune", "custom"]
    assert chosen[2] is mine
    assert [p.name for p in select(" session, io ")] == ["io", "session"]
    assert select("") == []


@pytest.mark.parametrize("bad", [["session", "bogus"], "io,bogus"])
def test_an_unknown_pass_name_is_a_config_error_naming_the_known_passes(bad: Any) -> None:
    with pytest.raises(ConfigError, match="unknown pass 'bogus'") as info:
        select(bad)
    assert all(name in str(info.value) for name in REGISTERED)


def test_an_item_that_is_not_a_pass_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pass names or Pass instances"):
        select([object()])


def test_optimize_rejects_an_unknown_pass_before_writing_anything(digits_mlp: Any, tmp_path: Path) -> None:
    model, x, _ = digits_mlp
    with pytest.raises(ConfigError, match="unknown pass 'bogus'"):
        co.optimize(model, eval_inputs=(x[:8],), passes=["bogus"], out_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_cli_rejects_an_unknown_pass_with_exit_code_2(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from typer.testing import CliRunner

    from cpuwise.cli.app import build_app
    from cpuwise.optimize.export import export_onnx

    model = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    path = export_onnx(model, (np.zeros((2, 4), np.float32),), tmp_path / "m.onnx", input_names=["x"])
    args = ["optimize", str(path), "--passes", "bogus", "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(build_app(), args)
    assert res.exit_code == 2 and "unknown pass 'bogus'" in res.output and "session" in res.output
