"""Issue 14 (items 6, 7): an artifact is read back as validated JSON and its model files stay in its folder.

An edited cpuwise.json must not make `load()` serve another file (a path outside the folder, an absolute
path, a symlink that leads out), and a field of the wrong type must be a ConfigError naming the field,
what was expected and what was found, never a raw KeyError/TypeError.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cpuwise.optimize as co
from cpuwise.errors import ConfigError

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4)).eval()
    x = np.random.default_rng(0).random((16, 8), dtype=np.float32)
    out = tmp_path_factory.mktemp("art") / "opt"
    co.optimize(model, (x[:2],), eval_inputs=(x,), out_dir=out, quick=True, passes="session",
                measure_reference=False)
    return out


@pytest.fixture
def copy_of(artifact: Path, tmp_path: Path) -> Callable[..., Path]:
    """copy_of(**edits): a copy of the artifact whose cpuwise.json has `edits` applied (None deletes)."""

    def make(**edits: Any) -> Path:
        dst = tmp_path / "copy"
        shutil.copytree(artifact, dst, ignore=shutil.ignore_patterns("candidates"))
        cfg = json.loads((dst / "cpuwise.json").read_text())
        for k, v in edits.items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        (dst / "cpuwise.json").write_text(json.dumps(cfg))
        return dst

    return make


def test_the_untouched_artifact_loads(artifact: Path) -> None:
    assert co.load(artifact).predict(np.zeros((2, 8), np.float32)).shape == (2, 4)


@pytest.mark.parametrize("where", ["../other/model.onnx", "sub/../../model.onnx", "ABS"])
def test_a_model_path_outside_the_folder_is_refused(copy_of: Callable[..., Path], where: str,
                                                    tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.onnx").write_bytes(b"not this one")
    target = str(other / "model.onnx") if where == "ABS" else where
    folder = copy_of(model=target)
    with pytest.raises(ConfigError, match="'model'.*inside the artifact folder"):
        co.load(folder)


def test_a_tokenizer_path_outside_the_folder_is_refused(copy_of: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{}")
    folder = copy_of(tokenizer="../tokenizer.json")
    with pytest.raises(ConfigError, match="'tokenizer'.*inside the artifact folder"):
        co.load(folder)


def test_a_model_file_that_is_a_symlink_out_of_the_folder_is_refused(copy_of: Callable[..., Path],
                                                                     tmp_path: Path) -> None:
    folder = copy_of()
    outside = tmp_path / "elsewhere.onnx"
    shutil.copyfile(folder / "model.onnx", outside)
    (folder / "model.onnx").unlink()
    os.symlink(outside, folder / "model.onnx")
    with pytest.raises(ConfigError, match="outside the artifact folder"):
        co.load(folder)


def test_onnx_external_data_outside_the_folder_is_a_config_error(copy_of: Callable[..., Path]) -> None:
    onnx = pytest.importorskip("onnx")
    folder = copy_of()
    model = onnx.load(str(folder / "model.onnx"))
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, location="w.bin",
                    size_threshold=0)
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../w.bin"
    os.replace(folder / "w.bin", folder.parent / "w.bin")
    onnx.save(model, str(folder / "model.onnx"))
    with pytest.raises(ConfigError, match="external data.*outside the artifact folder"):
        co.load(folder)


BAD_FIELDS = [
    ({"inputs": "input"}, "'inputs'"),
    ({"inputs": [{"name": 3, "dtype": "tensor(float)", "shape": [None, 8]}]}, "'inputs[0].name'"),
    ({"io": {"batch_size": "32"}}, "'io.batch_size'"),
    ({"io": {"batch_size": 0}}, "'io.batch_size'"),
    ({"session": 5}, "'session'"),
    ({"session": {"intra_op_threads": "two"}}, "'session"),
    ({"cache": {"max_bytes": "lots"}}, "'cache.max_bytes'"),
    ({"sequence": {"mask": 1}}, "'sequence"),
    ({"model": None}, "'model'"),
    ({"model": 7}, "'model'"),
    ({"max_length": "long"}, "'max_length'"),
    ({"task": ["embedding"]}, "'task'"),
    ({"runtime": "tensorflow"}, "'runtime'"),
]


@pytest.mark.parametrize(("edits", "field"), BAD_FIELDS, ids=[f for _, f in BAD_FIELDS])
def test_a_field_of_the_wrong_type_is_a_config_error_naming_it(copy_of: Callable[..., Path],
                                                               edits: dict[str, Any], field: str) -> None:
    folder = copy_of(**edits)
    with pytest.raises(ConfigError) as info:
        co.load(folder)
    assert field in str(info.value) and "expected" in str(info.value) and "found" in str(info.value)


def test_a_config_that_is_not_json_is_a_config_error(copy_of: Callable[..., Path]) -> None:
    folder = copy_of()
    (folder / "cpuwise.json").write_bytes(b"\x80\x04\x95 pickled?")
    with pytest.raises(ConfigError, match="cpuwise.json"):
        co.load(folder)


def test_a_config_that_is_a_json_list_is_a_config_error(copy_of: Callable[..., Path]) -> None:
    folder = copy_of()
    (folder / "cpuwise.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        co.load(folder)
