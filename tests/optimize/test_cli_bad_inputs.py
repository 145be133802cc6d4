"""Issue 14 (item 8): `cpuwise optimize` on a file that is not what its name says, or on input data of the
wrong shape, exits 2 with a message naming the file, what was expected and what was found (no traceback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _invoke(args: list[str]) -> tuple[int, str, BaseException | None]:
    from typer.testing import CliRunner

    from cpuwise.cli.app import build_app

    res = CliRunner().invoke(build_app(), args)
    return res.exit_code, res.output, res.exception


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cpuwise.optimize.export import export_onnx

    model = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    folder = tmp_path_factory.mktemp("m")
    return export_onnx(model, (np.zeros((2, 4), np.float32),), folder / "m.onnx", input_names=["x"])


@pytest.mark.parametrize("content", [b"PK\x03\x04 a zip, not a model", b"\x00" * 64, b"hello, world\n", b""])
def test_a_file_that_is_not_onnx_but_named_so_exits_2(tmp_path: Path, content: bytes) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(content)
    code, out, exc = _invoke(["optimize", str(fake), "--out", str(tmp_path / "o"), "--quick"])
    assert code == 2, (code, out, exc)
    assert "model.onnx" in out and "expected an ONNX model" in out and "Traceback" not in out


@pytest.mark.parametrize(
    ("arrays", "found"),
    [
        ({"x": np.zeros((8, 5), np.float32)}, "(8, 5)"),  # wrong feature size
        ({"x": np.zeros((8,), np.float32)}, "(8,)"),  # wrong rank
        ({"x": np.zeros((0, 4), np.float32)}, "(0, 4)"),  # no rows
        ({"x": np.array([["a"] * 4] * 8)}, "<U1"),  # strings
    ],
    ids=["feature-size", "rank", "empty", "dtype"],
)
def test_an_npz_of_the_wrong_shape_or_type_exits_2(onnx_model: Path, tmp_path: Path,
                                                    arrays: dict[str, np.ndarray], found: str) -> None:
    data = tmp_path / "data.npz"
    np.savez(data, **arrays)  # type: ignore[arg-type]
    code, out, exc = _invoke(["optimize", str(onnx_model), "--data", str(data), "--out", str(tmp_path / "o"),
                              "--quick", "--passes", "session"])
    assert code == 2, (code, out, exc)
    flat = " ".join(out.split())
    assert "'x'" in flat and "expected" in flat and found in flat and "Traceback" not in out


def test_an_npz_that_is_not_an_npz_exits_2(onnx_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.npz"
    data.write_bytes(b"not a zip archive")
    code, out, exc = _invoke(["optimize", str(onnx_model), "--data", str(data), "--out", str(tmp_path / "o")])
    assert code == 2, (code, out, exc)
    assert "data.npz" in out and "expected" in out


def test_an_npz_with_pickled_objects_is_refused_without_unpickling(onnx_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.npz"
    np.savez(data, x=np.array([{"a": 1}] * 8, dtype=object))
    code, out, exc = _invoke(["optimize", str(onnx_model), "--data", str(data), "--out", str(tmp_path / "o")])
    assert code == 2, (code, out, exc)
    assert "data.npz" in " ".join(out.split())
