"""Small real models for the optimize tests: an MLP trained on scikit-learn's digits in about a second."""

from __future__ import annotations

from collections.abc import Iterator
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
