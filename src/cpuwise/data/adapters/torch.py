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
from cpuwise.data._tree import leaves
from cpuwise.data.adapters._base import Wrapped
from cpuwise.data.adapters._report import reported
from cpuwise.data.adapters._torch_convert import Converter, normalize_constants
from cpuwise.data.adapters.torch_loader import DataLoader
from cpuwise.errors import ConfigError

__all__ = ["DataLoader", "TorchBatches", "to_torch"]


class TorchBatches(Wrapped):
    """An iterable of converted batches over `ds`; len(), set_epoch and state_dict pass through to ds."""

    def __init__(self, ds: Any, converter: Converter) -> None:
        super().__init__(ds)
        self.converter = converter

    def __iter__(self) -> Iterator[Any]:
        if self.converter.device.type == "cuda":
            inner = self._iter_cuda()
        else:
            inner = (self.converter(b) for b in self.dataset)
        yield from reported(self.dataset, inner)

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
    for t in leaves(tree):
        if hasattr(t, "record_stream") and getattr(t, "is_cuda", False):
            t.record_stream(stream)


def to_torch(
    ds: Any,
    device: Any = None,
    normalize: Any = None,
    channels_last: bool = False,
    dtype: Any = None,
    pin_memory: bool | str = "auto",
    non_blocking: bool = True,
    shard: bool | str = "auto",
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
        shard: "auto": under an initialised torch.distributed group of more than one rank, a cpuwise
            pipeline without `.shard()` gets one right after its source and shuffle (each rank its
            share of every epoch: no DistributedSampler needed); True: shard by torch.distributed
            or the RANK/WORLD_SIZE variables; False: leave the pipeline as it is.
    """
    torch = require("torch", extra="torch", purpose="the torch adapter")
    # the options are resolved once: the normalisation constants are placed on the device here
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"to_torch: expected a CUDA device for device={device!r}, found none (torch "
            f"{torch.__version__}, torch.cuda.is_available() is False); fix: device=None for the CPU, "
            "or install a CUDA build of torch."
        )
    if pin_memory not in (True, False, "auto"):
        raise ConfigError(f"pin_memory must be True, False or 'auto', got {pin_memory!r}.")
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise ConfigError(f"dtype must be a torch.dtype such as torch.float32 or None, got {dtype!r}.")
    # Pinned memory only helps copies to a CUDA device; without CUDA torch cannot pin at all.
    pin = bool(pin_memory) and dev.type == "cuda" and torch.cuda.is_available()
    scale = shift = None
    if normalize is not None:
        mean, std = normalize_constants(normalize)
        scale = torch.tensor(1.0 / (255.0 * std), dtype=torch.float32).view(1, -1, 1, 1).to(dev)
        shift = torch.tensor(-mean / std, dtype=torch.float32).view(1, -1, 1, 1).to(dev)
    elif dtype is not None and dtype.is_floating_point:
        scale = torch.full((1, 1, 1, 1), 1.0 / 255.0).to(dev)  # ToTensor's 0..1 range
    conv = Converter(dev, scale, shift, dtype, channels_last, pin, non_blocking and dev.type != "cpu")
    if shard not in (True, False, "auto"):
        raise ConfigError(f"to_torch: shard must be True, False or 'auto', got {shard!r}.")
    dist = torch.distributed
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if hasattr(ds, "sharded") and (shard is True or (shard == "auto" and distributed)):
        ds = ds.sharded()
    return TorchBatches(ds, conv)
