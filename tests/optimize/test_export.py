"""Export to ONNX with dynamic axes, export errors that name the op and module, safe loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cpuwise.errors import ConfigError, ExportError
from cpuwise.optimize.export import export_onnx, load_model
from cpuwise.optimize.runtimes.onnxruntime import make_session, ort_runner

torch = pytest.importorskip("torch")


class Seq(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)

    def forward(self, ids: Any, mask: Any) -> Any:
        h = self.emb(ids) * mask.unsqueeze(-1)
        return h.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


class Odd(torch.nn.Module):
    def forward(self, x: Any) -> Any:
        return torch.special.airy_ai(x)


class Outer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Sequential(torch.nn.Linear(4, 4), Odd())

    def forward(self, x: Any) -> Any:
        return self.head(x)


def test_dynamic_batch_and_sequence_axes(tmp_path: Path) -> None:
    m = Seq().eval()
    ids = torch.randint(1, 50, (2, 5))
    path = export_onnx(m, (ids, torch.ones_like(ids)), tmp_path / "s.onnx", input_names=["ids", "mask"])
    run = ort_runner(make_session(path))
    ids2 = np.random.default_rng(0).integers(1, 50, (3, 11)).astype(np.int64)
    out = run({"ids": ids2, "mask": np.ones_like(ids2)})
    ref = m(torch.from_numpy(ids2), torch.ones(3, 11, dtype=torch.int64)).detach().numpy()
    assert out.shape == (3, 8) and np.allclose(out, ref, atol=1e-5)


def test_unsupported_op_names_op_and_module(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_onnx(Outer(), (torch.randn(2, 4),), tmp_path / "x.onnx")
    msg = str(info.value)
    assert "special_airy_ai" in msg and "'head.1'" in msg and "Fix:" in msg


def test_state_dict_pt_is_rejected_without_unpickling_code(tmp_path: Path) -> None:
    p = tmp_path / "w.pt"
    torch.save(Seq().state_dict(), p)
    with pytest.raises(ConfigError, match="weights only"):
        load_model(p)
    with pytest.raises(ConfigError):
        load_model(tmp_path / "missing.onnx")


def test_pt2_and_torchscript_load(tmp_path: Path) -> None:
    m = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
    x = torch.randn(2, 4)
    ep = torch.export.export(m, (x,))
    torch.export.save(ep, tmp_path / "m.pt2")
    src = load_model(tmp_path / "m.pt2")
    assert src.module is not None and src.example_inputs is not None
    assert torch.allclose(src.module(x), m(x))
    torch.jit.save(torch.jit.trace(m, (x,)), tmp_path / "m.pt")
    ts = load_model(tmp_path / "m.pt")
    assert torch.allclose(ts.module(x), m(x))
