"""Keras 3 (torch backend): model.fit on a PyDataset that decodes and augments JPEGs per batch."""

import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _data import decode_crop, jpegs  # noqa: E402


class Photos(keras.utils.PyDataset):
    def __init__(self, files: list[bytes], batch_size: int = 32, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.files, self.batch_size = files, batch_size

    def __len__(self) -> int:
        return 400

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(idx)
        x = np.stack([decode_crop(self.files[(idx * self.batch_size + k) % len(self.files)], rng, size=128)
                      .transpose(1, 2, 0) for k in range(self.batch_size)])
        y = np.arange(self.batch_size) % 10
        return x, y


class StopAfter(keras.callbacks.Callback):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.end = time.perf_counter() + seconds

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if time.perf_counter() > self.end:
            self.model.stop_training = True


def main(seconds: float) -> None:
    import torch

    torch.set_num_threads(1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((128, 128, 3)), keras.layers.AveragePooling2D(4),
                              keras.layers.Conv2D(16, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(Photos(jpegs(32)), epochs=50, verbose=0, callbacks=[StopAfter(seconds)])


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
