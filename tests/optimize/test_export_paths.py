"""Issue 12 (item 3): export works on what users have: nn.TransformerEncoder with a padding mask (fast path
off), torch's dynamo exporter as a fallback, models called with keyword (dict) inputs, and Hugging Face
models given as a local folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cpuwise.optimize as co
from cpuwise.errors import ExportError
from cpuwise.optimize.export import export_onnx, load_model
from cpuwise.optimize.runtimes.onnxruntime import make_session, ort_runner

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Encoder(torch.nn.Module):
    """Token ids and torch's key padding mask (True = pad) -> mean of the real tokens' states."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(64, 32)
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, 2)

    def forward(self, ids: Any, pad: Any) -> Any:
        h = self.enc(self.emb(ids), src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return (h * keep).sum(1) / keep.sum(1)


def _padded_rows(n: int = 48, width: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = np.zeros((n, width), np.int64)
    pad = np.ones((n, width), bool)
    for i, k in enumerate(rng.integers(3, width + 1, n)):
        ids[i, :k], pad[i, :k] = rng.integers(1, 64, k), False
    return ids, pad


def test_a_transformer_encoder_with_a_padding_mask_exports_and_matches_eager(tmp_path: Path) -> None:
    model = Encoder().eval()
    ids, pad = _padded_rows(8)
    path = export_onnx(model, (torch.from_numpy(ids[:2, :12]), torch.from_numpy(pad[:2, :12])),
                       tmp_path / "m.onnx", input_names=["ids", "pad"])
    got = ort_runner(make_session(path))({"ids": ids, "pad": pad})  # another batch size and length
    with torch.no_grad():
        want = model(torch.from_numpy(ids), torch.from_numpy(pad)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert torch.backends.mha.get_fastpath_enabled()  # switched back on after the export


def test_a_transformer_encoder_optimizes_end_to_end_and_serves_padded_rows(tmp_path: Path) -> None:
    model = Encoder().eval()
    ids, pad = _padded_rows()
    result = co.optimize(model, (ids[:2], pad[:2]), eval_inputs=(ids, pad), task="embedding", max_drop=0.01,
                         target="throughput", out_dir=tmp_path / "opt", quick=True, passes="io,session,int8",
                         time_budget_s=60)
    assert result.within_budget and result.chosen is not None
    spec = result.extra["sequence"]
    assert spec is not None and spec["mask"] == "pad" and spec["mask_pads"] is True
    assert any(c.technique == "io" and c.ok for c in result.candidates)  # runs at each batch's own length
    pred = co.load(tmp_path / "opt", cache=False)
    out = pred.predict((ids, pad))
    with torch.no_grad():
        want = model(torch.from_numpy(ids), torch.from_numpy(pad)).numpy()
    cos = (out * want).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.98


class LogCumSumExp(torch.nn.Module):
    def forward(self, x: Any) -> Any:
        return torch.logcumsumexp(x, 1)  # no TorchScript-exporter mapping; the dynamo exporter has one


def test_the_dynamo_exporter_is_the_fallback(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    x = np.random.default_rng(0).random((4, 6), dtype=np.float32)
    path = export_onnx(LogCumSumExp(), (torch.from_numpy(x[:2]),), tmp_path / "m.onnx", input_names=["x"])
    got = ort_runner(make_session(path))({"x": x})
    np.testing.assert_allclose(got, torch.logcumsumexp(torch.from_numpy(x), 1).numpy(), rtol=1e-5, atol=1e-5)


def test_a_model_neither_exporter_takes_keeps_todays_error(tmp_path: Path) -> None:
    class Erfinv(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return torch.erfinv(x.clamp(-0.5, 0.5))

    with pytest.raises(ExportError, match="op 'aten::erfinv'.*dynamo exporter failed too"):
        export_onnx(Erfinv(), (torch.zeros(2, 3),), tmp_path / "m.onnx")


class ByKeyword(torch.nn.Module):
    """Takes its inputs in the other order than a dict lists them, and returns a dict."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(64, 8)

    def forward(self, attention_mask: Any, input_ids: Any) -> Any:
        m = attention_mask.unsqueeze(-1).float()
        return {"last_hidden_state": self.emb(input_ids) * m, "pooled": (self.emb(input_ids) * m).sum(1)}


def test_dict_inputs_call_the_model_by_keyword(token_rows: Any, tmp_path: Path) -> None:
    ids, mask = token_rows(16, 10)
    feed = {"input_ids": ids, "attention_mask": mask}
    result = co.optimize(ByKeyword().eval(), eval_inputs=feed, out_dir=tmp_path / "o", quick=True,
                         passes="session", measure_reference=False, runtimes=["onnxruntime"])
    out = co.load(tmp_path / "o").predict(feed)
    with torch.no_grad():
        want = ByKeyword().eval()(torch.from_numpy(mask), torch.from_numpy(ids))["last_hidden_state"].numpy()
    assert result.chosen is not None
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=32)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf") / "tiny-bert"
    transformers.BertModel(cfg, add_pooling_layer=False).save_pretrained(folder)
    return folder


def test_a_hugging_face_folder_is_a_model(hf_folder: Path, token_rows: Any, tmp_path: Path) -> None:
    ids, mask = token_rows(16, 12)
    source = load_model(hf_folder)
    assert source.module is not None
    assert source.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    result = co.optimize(str(hf_folder), eval_inputs=feed, task="embedding", out_dir=tmp_path / "o",
                         quick=True, passes="io,session", runtimes=["onnxruntime"])
    assert result.within_budget
    out = co.load(tmp_path / "o").predict(feed)
    assert out.shape == (16, 12, 32)


def test_a_sentence_transformers_folder_gets_its_pooling(hf_folder: Path, token_rows: Any,
                                                         tmp_path: Path) -> None:
    import shutil

    st = tmp_path / "st"
    shutil.copytree(hf_folder, st)
    (st / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]))
    (st / "1_Pooling").mkdir()
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    ids, mask = token_rows(4, 12)
    model = load_model(st).module
    args = (torch.from_numpy(ids), torch.from_numpy(mask), torch.zeros(4, 12, dtype=torch.long))
    with torch.no_grad():
        out = model(*args).numpy()
    assert out.shape == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
