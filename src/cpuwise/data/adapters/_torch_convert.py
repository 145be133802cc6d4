"""numpy batch -> torch tensors on a device: what travels, in which layout, and where it is normalised.

Images (uint8 arrays shaped N,H,W,C with C in 1, 3, 4) travel as uint8 — 4x fewer bytes than float32 —
and become N,C,H,W (channels_last memory format if asked) and float on the device, where
`(x / 255 - mean) / std` is one fused multiply-add. Other integer arrays (labels, token ids) become
int64; float arrays keep their dtype unless `dtype` names a float type. Tuples, lists and dicts keep
their structure; anything that is not an array (paths, strings) passes through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cpuwise.data._tree import map_leaves
from cpuwise.errors import ConfigError

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def is_image(arr: np.ndarray) -> bool:
    """The pipeline's image batches: uint8, N,H,W,C with C in (1, 3, 4)."""
    return arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[-1] in (1, 3, 4)


@dataclass
class Converter:
    """Turns one numpy batch into tensors on `device`. Built by `to_torch`."""

    device: Any  # torch.device
    scale: Any | None  # (1, C, 1, 1) tensor on device: 1 / (255 * std), or 1/255, or None
    shift: Any | None  # (1, C, 1, 1) tensor on device: -mean / std, or None
    float_dtype: Any | None  # torch dtype for images and float arrays, None = keep
    channels_last: bool
    pin: bool
    non_blocking: bool

    def __call__(self, batch: Any) -> Any:
        return map_leaves(self.leaf, batch)

    def leaf(self, x: Any) -> Any:
        """Arrays and numpy scalars become tensors; anything else passes through."""
        if isinstance(x, np.ndarray):
            return self.array(x)
        if isinstance(x, np.generic):
            return self.array(np.asarray(x))
        return x

    def array(self, arr: np.ndarray) -> Any:
        import torch  # lazy: the torch extra; this module loads with the DataLoader drop-in

        if arr.dtype.kind not in "biufc":
            return arr  # strings, objects: nothing a tensor can hold
        host = host_tensor(arr, self.pin)
        t = host.to(self.device, non_blocking=self.non_blocking) if self.device.type != "cpu" else host
        if is_image(arr):
            return self.image(t)
        if arr.dtype.kind in "iu":
            return t.to(torch.int64)
        if arr.dtype.kind == "f" and self.float_dtype is not None and self.float_dtype.is_floating_point:
            return t.to(self.float_dtype)
        return t

    def image(self, t: Any) -> Any:
        import torch  # lazy: the torch extra (see array)

        if self.scale is not None and self.scale.shape[1] not in (1, t.shape[-1]):
            raise ConfigError(
                f"normalize has {self.scale.shape[1]} channel values but the images have "
                f"{t.shape[-1]} channels (shape {tuple(t.shape)}, N,H,W,C); fix: give one mean and one "
                "std per channel."
            )
        x = t.permute(0, 3, 1, 2)  # a view: NHWC memory is exactly NCHW in channels_last layout
        if not self.channels_last:
            x = x.contiguous()  # reorder while still uint8: a quarter of the bytes of float
        if self.scale is None and self.float_dtype is None:
            return x
        dtype = self.float_dtype or torch.float32
        x = x.to(dtype)  # keeps the layout (preserve_format)
        if self.scale is not None and dtype.is_floating_point:
            x.mul_(self.scale.to(dtype))
            if self.shift is not None:
                x.add_(self.shift.to(dtype))
        return x


def host_tensor(arr: np.ndarray, pin: bool) -> Any:
    """A CPU tensor holding `arr`: zero-copy where torch allows it, else one copy (into pinned memory
    when `pin`, so the device copy can be asynchronous)."""
    import torch  # lazy: the torch extra (see Converter.array)

    if pin:
        t = torch.empty(arr.shape, dtype=torch.from_numpy(np.empty(0, arr.dtype)).dtype, pin_memory=True)
        t.numpy()[...] = arr
        return t
    if not arr.flags.writeable or any(s < 0 for s in arr.strides):
        arr = np.array(arr)  # read-only (a memmap, a shared buffer) or reversed: torch needs a copy
    return torch.from_numpy(arr)


def normalize_constants(normalize: Any, channels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) in the 0..1 scale as float64 arrays. Accepts "imagenet", or (mean, std) given in
    0..1 (torchvision's convention) or in 0..255 (any value above 1 means 0..255)."""
    if isinstance(normalize, str):
        if normalize.lower() != "imagenet":
            raise ConfigError(f"normalize must be None, 'imagenet' or (mean, std), got {normalize!r}.")
        normalize = IMAGENET
    if not (isinstance(normalize, Sequence) and len(normalize) == 2):
        raise ConfigError(
            f"normalize must be (mean, std) — two sequences of per-channel values — got {normalize!r}; "
            "fix: normalize=((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) or 'imagenet'."
        )
    mean = np.atleast_1d(np.asarray(normalize[0], dtype=np.float64))
    std = np.atleast_1d(np.asarray(normalize[1], dtype=np.float64))
    if mean.shape != std.shape or mean.ndim != 1:
        raise ConfigError(f"normalize: mean and std must have the same length, got {mean} and {std}.")
    if (std <= 0).any():
        raise ConfigError(f"normalize: every std must be > 0, got {std.tolist()}.")
    if max(mean.max(), std.max()) > 1.0:  # given in pixel units (e.g. 123.675, 58.395)
        mean, std = mean / 255.0, std / 255.0
    return mean, std
