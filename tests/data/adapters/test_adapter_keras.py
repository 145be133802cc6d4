"""to_keras: a keras.utils.PyDataset that serves every batch once per epoch, and Keras trains on it."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cpuwise._optional import available

if not available("keras"):
    pytest.skip("keras is not installed (pip install keras)", allow_module_level=True)
os.environ.setdefault("KERAS_BACKEND", "torch")

pytestmark = pytest.mark.slow  # importing keras takes seconds


class _Epochs:
    """A re-iterable of batches whose content depends on the epoch (like a shuffled pipeline)."""

    def __init__(self, n: int, b: int = 4) -> None:
        self.n, self.b, self.epoch, self.epochs_seen = n, b, 0, []

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, e: int) -> None:
        self.epoch = e

    def __iter__(self):  # type: ignore[no-untyped-def]
        self.epochs_seen.append(self.epoch)
        for i in range(self.n):
            x = np.full((self.b, 3), i + 100 * self.epoch, np.float32)
            yield x, np.full((self.b, 1), 1.0, np.float32)


def test_every_batch_once_per_epoch_whatever_index_order() -> None:
    from cpuwise.data.adapters.keras import to_keras

    src = _Epochs(5)
    kd = to_keras(src)
    assert len(kd) == 5 and kd.num_batches == 5
    first = sorted(int(kd[i][0][0, 0]) for i in (4, 0, 3, 1, 2))  # Keras' shuffle asks in any order
    assert first == [0, 1, 2, 3, 4]
    kd.on_epoch_end()
    second = sorted(int(kd[i][0][0, 0]) for i in range(5))
    assert second == [100, 101, 102, 103, 104] and src.epochs_seen == [0, 1]
    # an epoch that ends without on_epoch_end (steps exhausted) still rolls over
    third = [int(kd[i][0][0, 0]) for i in range(5)]
    assert third == [200, 201, 202, 203, 204]
    with pytest.raises(IndexError):
        kd[5]


def test_too_many_fields_is_a_clear_error() -> None:
    from cpuwise.data.adapters.keras import to_keras
    from cpuwise.errors import ConfigError

    kd = to_keras([tuple(np.zeros((2, 1)) for _ in range(4))])
    with pytest.raises(ConfigError, match="sample_weight"):
        kd[0]


def test_keras_fit_trains_on_it() -> None:
    import keras

    from cpuwise.data.adapters.keras import to_keras

    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 1)).astype(np.float32)
    batches = []
    for _ in range(8):
        x = rng.normal(size=(16, 3)).astype(np.float32)
        batches.append((x, x @ w))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    hist = model.fit(to_keras(batches), epochs=3, verbose=0)
    assert len(hist.history["loss"]) == 3
    assert hist.history["loss"][-1] < hist.history["loss"][0] * 0.5


def test_on_a_cpuwise_pipeline_each_epoch_is_a_new_shuffle() -> None:
    import cpuwise.data as cd

    samples = [(np.full(2, i, np.float32), np.float32(i)) for i in range(12)]
    kd = cd.from_sequence(samples).shuffle(seed=0).batch(4).to_keras()
    assert len(kd) == 3
    epochs = []
    for _ in range(2):
        epochs.append([int(v) for i in range(3) for v in kd[i][1]])
        kd.on_epoch_end()
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(12)) and epochs[0] != epochs[1]
