"""Keras 3 (torch backend): a wide MLP on the digits data set held in memory as numpy arrays."""

import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402


class StopAfter(keras.callbacks.Callback):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.end = time.perf_counter() + seconds

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if time.perf_counter() > self.end:
            self.model.stop_training = True


def main(seconds: float) -> None:
    import torch

    torch.set_num_threads(2)
    keras.utils.set_random_seed(0)
    x, y = load_digits(return_X_y=True)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(2048, activation="relu"),
                              keras.layers.Dense(2048, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x / 16.0, y, batch_size=128, epochs=1000, verbose=0, callbacks=[StopAfter(seconds)])


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
