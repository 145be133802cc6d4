"""Module-level functions for the engine tests (process workers import them by name)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from cpuwise.data.transform import RandomTransform


def square(x: int) -> int:
    return x * x


def to_array(x: int) -> tuple[np.ndarray, int]:
    """A sample big enough (8 KiB) that chunks of a few go through shared memory."""
    return np.full((32, 64), x, dtype=np.int32), x


def slow_array(x: int) -> tuple[np.ndarray, int]:
    time.sleep(0.004)
    return np.full((64, 64), x, dtype=np.int32), x


class Jitter(RandomTransform):
    """Adds random noise drawn from the per-sample rng (same numbers in any worker)."""

    def __call__(self, sample: Any, rng: np.random.Generator) -> Any:
        base = sample[0] if isinstance(sample, tuple) else sample
        return base + rng.integers(0, 1000, size=base.shape[-1]), int(rng.integers(0, 2))


def arange16(x: int) -> np.ndarray:
    return np.arange(16, dtype=np.int64) + x


def fail_on_7s(x: int) -> int:
    if x % 100 == 7:
        raise ValueError(f"corrupt sample {x}")
    return x


def decode_file(sample: tuple[str, int]) -> tuple[np.ndarray, int]:
    """Reads a tiny 'image' file; raises on the corrupt ones (like a JPEG decoder would)."""
    path, label = sample
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"IMG1"):
        raise ValueError("not an image: bad header")
    return np.frombuffer(data[4:], dtype=np.uint8).copy(), label


def crash_on_13(x: int) -> int:
    """Kills its own process on sample 13 (like a segfaulting native decoder)."""
    if x == 13:
        os._exit(3)
    return x


def record_pid(x: int) -> tuple[int, int]:
    time.sleep(0.002)
    return x, os.getpid()


def thread_caps(x: int) -> tuple[int, int]:
    from threadpoolctl import threadpool_info

    infos = threadpool_info()
    return x, max([i["num_threads"] for i in infos] or [1])


def obj_record(rec: dict[str, Any]) -> int:
    return len(rec["name"]) + rec["value"]


def double_bytes(b: bytes) -> bytes:
    return b * 2


def cv2_threads(x: int) -> int:
    """OpenCV's thread count seen inside the worker (cv2 imported lazily, as image ops do)."""
    import cv2

    return int(cv2.getNumThreads())


def open_path(path: str) -> int:
    """Opens a path by name, as a user's decoder does (blocks on a FIFO nobody writes); leaves
    `path`.started.<pid> first, so a test knows the worker got there."""
    with open(f"{path}.started.{os.getpid()}", "w"):
        pass
    with open(path, "rb") as f:
        return len(f.read())


def lock_on_17(x: int) -> Any:
    """Sample 17's result cannot be pickled (a lock), as a careless transform's might."""
    import threading

    return threading.Lock() if x == 17 else np.full(4, x)


def _refuse_to_load(x: int) -> None:
    raise ValueError(f"result {x} cannot be rebuilt in this process")


class LoadsNowhere:
    """Pickles fine (in the worker) but raises when unpickled (in the pipeline's process)."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __reduce__(self) -> tuple[Any, ...]:
        return (_refuse_to_load, (self.x,))


def unloadable_on_5(x: int) -> Any:
    return LoadsNowhere(x) if x == 5 else x


def hang_on_7(sample: tuple[str, str]) -> int:
    """Sample "s7" blocks, in every worker that runs it, until the file `release` exists (the test
    creates it only to clean up)."""
    name, release = sample
    x = int(name[1:])
    if x == 7:
        while not os.path.exists(release):
            time.sleep(0.01)
    return x


def hang_on_7_once(sample: tuple[str, str]) -> int:
    """Sample "s7" blocks the first worker that runs it (forever); a later worker runs it normally."""
    name, marker = sample
    x = int(name[1:])
    if x == 7:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return x
        os.close(fd)
        while True:
            time.sleep(0.01)
    return x
