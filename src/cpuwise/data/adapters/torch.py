"""torch adapter: numpy batches from a cpuwise pipeline -> torch tensors on a device.

    for images, labels in ds.to_torch(device="cuda", normalize="imagenet", channels_last=True):
        ...   # images: float32 N,C,H,W on the GPU, normalised there; labels: int64

On CUDA, batches are copied from pinned host memory with non_blocking copies on a side stream, one
batch ahead, so the copy of batch i+1 overlaps the training step on batch i. uint8 images travel and
are normalised on the device. On the CPU, arrays become tensors without a copy (torch.from_numpy).

`DataLoader` (in torch_loader.py, re-exported here) is a drop-in for torch.utils.data.DataLoader.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cpuwise._optional import require
from cpuwise.data.adapters._base import Wrapped
from cpuwise.data.adapters._report import active_channel, emit_stats, timed
from cpuwise.data.adapters._torch_convert import Converter, make_converter
from cpuwise.data.adapters.torch_loader import DataLoader

__all__ = ["DataLoader", "TorchBatches", "to_torch"]


class TorchBatches(Wrapped):
    """An iterable of converted batches over `ds`; len(), set_epoch and state_dict pass through to ds."""

    def __init__(self, ds: Any, converter: Converter) -> None:
        super().__init__(ds)
        self.converter = converter

    def __iter__(self) -> Iterator[Any]:
        channel = active_channel(self.dataset)
        if self.converter.device.type == "cuda":
            inner = self._iter_cuda()
        else:
            inner = (self.converter(b) for b in self.dataset)
        yield from timed(inner, channel)
        emit_stats(self.dataset, channel)

    def _iter_cuda(self) -> Iterator[Any]:
        torch = require("torch", extra="torch")
        device = self.converter.device
        stream = torch.cuda.Stream(device=device)

        def place(batch: Any) -> Any:
            with torch.cuda.stream(stream):
                return self.converter(batch)

        def before_yield(current: Any) -> None:
            consumer = torch.cuda.current_stream(device)
            consumer.wait_stream(stream)
            _record_stream(current, consumer)

        return self._ahead(place, before_yield)


def _record_stream(tree: Any, stream: Any) -> None:
    """Tell the caching allocator the consumer stream uses these tensors (allocated on the side stream)."""
    if isinstance(tree, tuple | list):
        for t in tree:
            _record_stream(t, stream)
    elif isinstance(tree, dict):
        for t in tree.values():
            _record_stream(t, stream)
    elif hasattr(tree, "record_stream") and getattr(tree, "is_cuda", False):
        tree.record_stream(stream)


def to_torch(
    ds: Any,
    device: Any = None,
    normalize: Any = None,
    channels_last: bool = False,
    dtype: Any = None,
    pin_memory: bool | str = "auto",
    non_blocking: bool = True,
) -> TorchBatches:
    """Batches of `ds` as torch tensors on `device` (default CPU).

    Args:
        ds: any iterable of collated numpy batches (a cpuwise Dataset after .batch(), or a list).
        device: "cuda", "cuda:1", torch.device, or None for the CPU.
        normalize: None, "imagenet", or (mean, std) per channel, in 0..1 or 0..255 units. uint8
            images become float (dtype, default float32) (x/255 - mean)/std on the device.
        channels_last: images in torch.channels_last memory format (faster convolutions on GPUs
            with tensor cores and on CPUs with oneDNN).
        dtype: float dtype for images and float arrays (e.g. torch.bfloat16); with no `normalize`,
            images are scaled to 0..1 as ToTensor does. None and no normalize: images stay uint8.
        pin_memory: "auto" pins on CUDA devices; pinned memory makes non_blocking copies asynchronous.
        non_blocking: asynchronous host-to-device copies.
    """
    require("torch", extra="torch", purpose="the torch adapter")
    conv = make_converter(device, normalize, channels_last, dtype, pin_memory, non_blocking)
    return TorchBatches(ds, conv)
