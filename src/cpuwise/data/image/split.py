"""decode_split: CPU workers decode part of each batch, the rest travels as bytes to the GPU.

    split = cd.image.decode_split(224)                       # one object for the map and the loader
    ds = (cd.from_folder("train/").shuffle(seed=0).map(split, on_error="skip")
            .batch(256, collate=split.collate).prefetch())
    for x, y in GpuLoader(ds, 224, split=split, decode="auto"): ...

Each sample draws its box and flip exactly as `decode_crop(size, flip=...)` would, then one more
number u: it goes to the GPU as bytes when u < the current GPU fraction, else the pipeline's worker
decodes it (reduced-scale DCT, crop, resize, flip) to uint8. The fraction lives in a small shared
file (`SplitControl`), so the loader can move it while the worker processes run. `collate` packs a
batch into a `SplitBatch`: the decoded images stacked, the bytes listed, and both positions.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from cpuwise.data.image import ops
from cpuwise.data.image.checks import DEFAULT_MAX_PIXELS
from cpuwise.data.image.geometry import Box
from cpuwise.data.stages.batch import collate as default_collate
from cpuwise.data.transform import RandomTransform, on_image
from cpuwise.errors import ConfigError


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class SplitControl:
    """A float shared by a file mapping: the loader writes it, map workers (any process) read it."""

    def __init__(self, value: float = 0.5) -> None:
        fd, self.path = tempfile.mkstemp(prefix="cpuwise-split-", suffix=".f64")
        os.write(fd, struct.pack("d", value))
        os.close(fd)
        self._mm: mmap.mmap | None = None
        self._owner = weakref.finalize(self, _unlink, self.path)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self._mm = state["path"], None
        self._owner = None  # type: ignore[assignment]  # only the creating process deletes the file

    def _map(self) -> mmap.mmap:
        if self._mm is None:
            with open(self.path, "r+b") as f:
                self._mm = mmap.mmap(f.fileno(), 8)
        return self._mm

    def get(self) -> float:
        try:
            return float(struct.unpack_from("d", self._map(), 0)[0])
        except (OSError, ValueError):
            return 0.0  # file gone (the loader was closed): decode on the CPU

    def set(self, value: float) -> None:
        struct.pack_into("d", self._map(), 0, float(min(1.0, max(0.0, value))))


@dataclass
class SplitBatch:
    """One batch, split: `images[k]` is sample `cpu_pos[k]`; `datas[j]` is sample `gpu_pos[j]`."""

    images: np.ndarray  # uint8 k x H x W x 3
    cpu_pos: np.ndarray  # int64 k
    datas: list[bytes]
    params: np.ndarray  # int32 m x 8 (see ops.PARAMS)
    names: list[str]
    gpu_pos: np.ndarray  # int64 m
    cpu_seconds: float  # worker time spent decoding `images`

    def __len__(self) -> int:
        return len(self.cpu_pos) + len(self.gpu_pos)


class decode_split(RandomTransform):  # noqa: N801
    """Decode on the CPU or pass bytes on to the GPU, per sample, by a fraction the loader sets."""

    def __init__(self, size: int | tuple[int, int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: float = 0.5,
                 gpu_fraction: float = 0.5, *, tolerate_truncated: bool = False,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        if not 0 <= gpu_fraction <= 1:
            raise ConfigError(f"gpu_fraction must be in [0, 1], got {gpu_fraction}")
        self.reader = ops.read_for_gpu(size, scale, ratio, flip, tolerate_truncated=tolerate_truncated,
                                       max_pixels=max_pixels)
        self.policy = self.reader.policy  # the GpuLoader applies the same one to its share
        self.out_h, self.out_w = self.reader.crop.out_h, self.reader.crop.out_w
        self.control = SplitControl(gpu_fraction)

    def __call__(self, sample: Any, rng: np.random.Generator) -> Any:
        def apply(src: Any) -> Any:
            buf, params, name = self.reader.read(src, rng, "decode_split")
            if params[7] and rng.random() < self.control.get():
                return buf, params, name
            t0 = time.perf_counter()
            box = Box(int(params[0]), int(params[1]), int(params[2]), int(params[3]))
            img = ops.decode_box(buf, lambda h, w: box, self.out_h, self.out_w, bool(params[4]),
                                 "decode_split", policy=self.policy, name=name)
            return img, time.perf_counter() - t0

        return on_image(sample, apply)

    def collate(self, samples: list[Any]) -> tuple[Any, ...]:
        """Batch collate for `.batch(n, collate=split.collate)`: (SplitBatch, *other fields)."""
        parts = [s[0] if isinstance(s, (tuple, list)) else s for s in samples]
        cpu = [i for i, p in enumerate(parts) if isinstance(p[0], np.ndarray)]
        gpu = [i for i, p in enumerate(parts) if not isinstance(p[0], np.ndarray)]
        images = (np.stack([parts[i][0] for i in cpu]) if cpu
                  else np.zeros((0, self.out_h, self.out_w, 3), np.uint8))
        params = (np.stack([parts[i][1] for i in gpu]) if gpu else np.zeros((0, 8), np.int32))
        batch = SplitBatch(images, np.asarray(cpu, np.int64), [parts[i][0] for i in gpu], params,
                           [parts[i][2] for i in gpu], np.asarray(gpu, np.int64),
                           float(sum(parts[i][1] for i in cpu)))
        if not isinstance(samples[0], (tuple, list)) or len(samples[0]) == 1:
            return (batch,)
        rest = default_collate([tuple(s[1:]) for s in samples])
        return (batch, *rest)
