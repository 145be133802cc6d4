"""Small real models for the optimize tests (an MLP trained on scikit-learn's digits in about a second),
and padded token rows."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits_mlp() -> tuple[Any, np.ndarray, np.ndarray]:
    """(model, x_test float32 (N, 64), y_test int64): a trained 64-48-10 MLP in eval mode."""
    torch = pytest.importorskip("torch")
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    tr, te = order[:1300], order[1300:1500]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x[tr]), torch.from_numpy(y[tr])
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval(), x[te], y[te]


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run the test with one torch thread: small SVDs, convs and training steps on a shared 2-core
    machine are slower with two threads (oversubscription), and results don't depend on the core count."""
    torch = pytest.importorskip("torch")
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _padded(lens: list[int], width: int = 32) -> dict[str, np.ndarray]:
    ids = np.zeros((len(lens), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lens):
        ids[i, :n] = np.arange(1, n + 1) + 100 * i
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _masked_sum(feed: dict[str, np.ndarray]) -> np.ndarray:
    return (feed["input_ids"] * feed["attention_mask"]).sum(1, keepdims=True).astype(np.float64)


@pytest.fixture
def padded() -> Callable[..., dict[str, np.ndarray]]:
    """padded(lengths, width=32): token ids and a 0/1 mask, each row padded with zeros to `width`."""
    return _padded


@pytest.fixture
def masked_sum() -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A 'model' whose output depends only on the real tokens (like masked mean pooling)."""
    return _masked_sum


@pytest.fixture(scope="session")
def tiny_bert() -> Callable[..., Any]:
    """tiny_bert(heads=2): a one-layer BERT encoder (hidden 32, eager attention: the kind ORT fuses)
    called as model(input_ids, attention_mask) -> the first token's vector."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    class Encoder(torch.nn.Module):
        def __init__(self, heads: int) -> None:
            super().__init__()
            cfg = transformers.BertConfig(
                vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=heads,
                intermediate_size=64, max_position_embeddings=32, attn_implementation="eager",
            )
            torch.manual_seed(0)
            self.bert = transformers.BertModel(cfg, add_pooling_layer=False)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]

    return lambda heads=2: Encoder(heads).eval()


def _token_rows(n: int = 32, width: int = 24, vocab: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = np.zeros((n, width), np.int64)
    mask = np.zeros_like(ids)
    for i, k in enumerate(rng.integers(2, width, n)):
        ids[i, :k], mask[i, :k] = rng.integers(1, vocab, k), 1
    return ids, mask


@pytest.fixture(scope="session")
def token_rows() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """token_rows(n=32, width=24, vocab=64): random token ids of random real lengths and their 0/1 mask."""
    return _token_rows



@pytest.fixture
def reference_only_metric() -> Callable[[], Callable[[np.ndarray, np.ndarray], float]]:
    """Make a metric (with eval_labels) that only the torch reference meets, so max_drop=0 is a budget no
    candidate holds on any CPU: the reference is scored first and gets 1, every candidate after it 0.
    (An error-based score cannot promise that: on some CPUs ONNX Runtime's FP32 matches torch bit for bit.)"""

    def make() -> Callable[[np.ndarray, np.ndarray], float]:
        calls = itertools.count()
        return lambda out, labels: 1.0 if next(calls) == 0 else 0.0

    return make
