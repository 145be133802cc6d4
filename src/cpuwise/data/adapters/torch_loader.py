"""A drop-in for torch.utils.data.DataLoader built on the cpuwise engine.

    from cpuwise.data.adapters.torch import DataLoader      # instead of torch.utils.data
    loader = DataLoader(train_set, batch_size=64, shuffle=True)   # num_workers chosen for you
    for epoch in range(10):
        loader.set_epoch(epoch)              # optional: like DistributedSampler.set_epoch
        for x, y in loader: ...

A map-style dataset (`__getitem__` and `__len__`) becomes from_sequence(indices) -> shuffle -> map(
dataset.__getitem__) -> batch(collate). Samples cross from workers as numpy arrays (tensors are
converted in the worker, zero-copy), and batches are collated with torch's default_collate (or your
collate_fn) into tensors, as torch's loader would. The engine picks and re-tunes the worker count
within the CPU budget; each epoch reshuffles (or follows set_epoch); state_dict()/load_state_dict()
resume mid-epoch.

Distributed training: under an initialised torch.distributed group (world size > 1) each rank
takes its share through `Dataset.shard()` with no sampler needed (`shard="auto"`): every epoch one
global permutation of (seed, epoch) is dealt round-robin to the ranks, padded to equal lengths as
DistributedSampler pads. A torch DistributedSampler passed as `sampler` maps onto the same shard
(its num_replicas, rank, seed, shuffle and drop_last), with its global per-epoch reshuffle: call
`set_epoch` as with torch. One rank's state_dict() resumes every rank, at any world size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import numpy as np

from cpuwise._optional import require
from cpuwise.data._tree import map_leaves
from cpuwise.data.adapters._torch_convert import host_tensor
from cpuwise.data.formats.sequence import from_sequence
from cpuwise.data.stages.shard import default_world, share_length
from cpuwise.errors import ConfigError

log = logging.getLogger("cpuwise.data")


class _Fetch:
    """dataset[i] with tensors turned into numpy arrays, so workers can return them without pickling."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __call__(self, index: Any) -> Any:
        return map_leaves(_to_numpy, self.dataset[int(index)])


def _to_numpy(x: Any) -> Any:
    """A torch tensor as a numpy array (it crosses from a worker without a pickle); else `x`."""
    if type(x).__module__.startswith("torch") and hasattr(x, "numpy"):
        return x.detach().cpu().numpy()
    return x


def _to_tensor(x: Any) -> Any:
    """A numeric numpy array as a CPU tensor (zero-copy where torch allows it); else `x`."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "biufc":
        return host_tensor(x, pin=False)
    return x


class _Collate:
    """Samples (numpy) -> tensors -> the user's collate_fn or torch's default_collate."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any] | None) -> None:
        self.collate_fn = collate_fn

    def __call__(self, samples: list[Any]) -> Any:
        torch = require("torch", extra="torch")
        fn = self.collate_fn or torch.utils.data.default_collate
        return fn([map_leaves(_to_tensor, s) for s in samples])


class _SamplerView:
    """What `loader.sampler` offers torch code: set_epoch(), len() in samples and this rank's indices."""

    def __init__(self, loader: DataLoader) -> None:
        self._loader = loader

    def set_epoch(self, epoch: int) -> None:
        self._loader.set_epoch(epoch)

    def __len__(self) -> int:
        return self._loader.samples_per_rank()

    def __iter__(self) -> Iterator[int]:
        """The dataset indices this rank reads in the next epoch, in order."""
        order = self._loader.index_order()
        order.set_epoch(self._loader.state_dict()["epoch"])
        return iter([int(i) for i in order])


class DataLoader:
    """torch.utils.data.DataLoader's interface, cpuwise's engine underneath (see the module docstring).

    Extra keyword arguments: seed (shuffle seed; default from `generator` or 0), device (move batches
    there, pinned and non_blocking), cpu_budget (cores the workers may use), shard ("auto": each rank
    of an initialised torch.distributed group takes its share; True: also from RANK/WORLD_SIZE;
    False: every rank reads everything, as torch's loader does without a sampler).
    Not supported (raise ConfigError): batch_sampler, samplers other than DistributedSampler,
    worker_init_fn (each sample's randomness comes from cpuwise.data.transform.sample_rng instead).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Any = None,
        batch_sampler: Any = None,
        num_workers: int | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
        seed: int | None = None,
        device: Any = None,
        cpu_budget: float | None = None,
        shard: bool | str = "auto",
    ) -> None:
        if batch_sampler is not None or worker_init_fn is not None:
            what, found = (("batch_sampler", batch_sampler) if batch_sampler is not None
                           else ("worker_init_fn", worker_init_fn))
            raise ConfigError(
                f"cpuwise DataLoader: {what} is not supported (expected None, found {type(found).__name__}); "
                "fix: use batch_size/shuffle/drop_last, and draw per-sample randomness from the rng that "
                "cpuwise passes to RandomTransform maps (same numbers whatever the worker count)."
            )
        if batch_size is None or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r} (unbatched loading: use "
                              "cpuwise.data.from_sequence(dataset) directly).")
        if num_workers is not None and num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0 or None (auto), got {num_workers}.")
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise ConfigError(
                f"cpuwise DataLoader expects a map-style dataset (__getitem__ and __len__), found "
                f"{type(dataset).__name__}; fix: for an iterable dataset use "
                "cpuwise.data.from_iterable(lambda: iter(ds)).batch(n).to_torch()."
            )
        self.dataset, self.batch_size, self.drop_last = dataset, int(batch_size), bool(drop_last)
        self.num_workers, self.pin_memory, self.collate_fn = num_workers, bool(pin_memory), collate_fn
        # Accepted for compatibility; the engine decides prefetching, worker lifetime and start method.
        self.timeout, self.prefetch_factor = timeout, prefetch_factor
        self.persistent_workers, self.multiprocessing_context = persistent_workers, multiprocessing_context
        self.generator, self.in_order = generator, in_order
        self.pin_memory_device, self.device, self.cpu_budget = pin_memory_device, device, cpu_budget
        if shard not in (True, False, "auto"):
            raise ConfigError(f"shard must be True, False or 'auto', got {shard!r}.")
        self._shuffle, self._shard = _read_sampler(sampler, bool(shuffle))
        if self._shard is None and (shard is True or (shard == "auto" and _distributed_world() > 1)):
            world, rank, where = default_world()
            self._shard = {"num_replicas": world, "rank": rank, "drop_last": False}
            log.info("cpuwise DataLoader: rank %d of %d (from %s) takes its share of each epoch "
                     "(shard=False to read everything in every rank)", rank, world, where)
        self.seed = int(seed if seed is not None else (generator.initial_seed() if generator is not None
                                                        else (self._shard or {}).get("seed", 0)))
        self._n = len(dataset)
        self.sampler = _SamplerView(self)
        self._pipeline: Any = None

    # --- torch DataLoader surface --------------------------------------------------------------
    def __len__(self) -> int:
        n = self.samples_per_rank()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def samples_per_rank(self) -> int:
        """Samples this rank reads per epoch (its share when sharded, pads included)."""
        if self._shard is None:
            return self._n
        return share_length(self._n, self._shard["num_replicas"], self._shard["drop_last"])

    def set_epoch(self, epoch: int) -> None:
        """The next iteration runs epoch `epoch` (its own shuffle order); without calls, every
        iteration advances the epoch by one, so each pass reshuffles as torch's loader does."""
        self._batches().set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        # The engine's iterator reports each delivery to `cpuwise doctor` itself.
        return iter(self._placed())

    # --- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Resume point: the epoch in progress and the position in it (after the last batch delivered)."""
        return dict(self._batches().state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The next iteration continues the saved epoch right after its last delivered batch."""
        self._batches().load_state_dict(state)

    def stats(self) -> Any:
        return self._batches().stats()

    def close(self) -> None:
        """Shut the workers down now (they also go when the loader is garbage-collected)."""
        if self._pipeline is not None:
            self._pipeline.close()

    # --- the pipeline ----------------------------------------------------------------------------
    def index_order(self) -> Any:
        """The pipeline of dataset indices this rank reads: shuffled and sharded as configured."""
        ds = from_sequence(cast(Sequence[int], np.arange(self._n, dtype=np.int64)), name="DataLoader")
        if self._shuffle:
            ds = ds.shuffle(seed=self.seed)
        if self._shard is not None:
            ds = ds.shard(self._shard["num_replicas"], self._shard["rank"],
                          drop_remainder=self._shard["drop_last"])
        return ds

    def _batches(self) -> Any:
        if self._pipeline is None:
            ds = self.index_order()
            fetch = _Fetch(self.dataset)
            if self.num_workers == 0:
                ds = ds.map(fetch, backend="inline", name="dataset[i]")
            elif self.num_workers is None:
                ds = ds.map(fetch, cpu_budget=self.cpu_budget, name="dataset[i]")
            else:
                ds = ds.map(fetch, workers=self.num_workers, name="dataset[i]")
            self._pipeline = ds.batch(self.batch_size, drop_last=self.drop_last,
                                      collate=_Collate(self.collate_fn))
        return self._pipeline

    def _placed(self) -> Any:
        ds = self._batches()
        return _Placed(ds, self.device, self.pin_memory) if self.device is not None or self.pin_memory else ds


class _Placed:
    """Pin (and move, when `device` is set) each collated batch of tensors."""

    def __init__(self, ds: Any, device: Any, pin: bool) -> None:
        self.ds, self.device, self.pin = ds, device, pin

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ds, name)

    def __iter__(self) -> Iterator[Any]:
        torch = require("torch", extra="torch")
        cuda = torch.cuda.is_available()
        for batch in self.ds:
            if self.pin and cuda:
                batch = _on_tensors(batch, lambda t: t.pin_memory())
            if self.device is not None:
                batch = _on_tensors(batch, lambda t: t.to(self.device, non_blocking=True))
            yield batch


def _on_tensors(tree: Any, fn: Callable[[Any], Any]) -> Any:
    """`fn` applied to every tensor of `tree`."""
    return map_leaves(lambda t: fn(t) if hasattr(t, "pin_memory") else t, tree)


def _read_sampler(sampler: Any, shuffle: bool) -> tuple[bool, dict[str, Any] | None]:
    """(shuffle, shard) from torch's arguments; a DistributedSampler (duck-typed) becomes a shard."""
    if sampler is None:
        return shuffle, None
    if all(hasattr(sampler, a) for a in ("num_replicas", "rank", "shuffle")):
        if shuffle:
            raise ConfigError("sampler and shuffle=True are mutually exclusive (as in torch); "
                              "fix: drop shuffle=True (the sampler's shuffle setting is used).")
        return bool(sampler.shuffle), {"num_replicas": int(sampler.num_replicas), "rank": int(sampler.rank),
                                       "seed": int(getattr(sampler, "seed", 0)),
                                       "drop_last": bool(getattr(sampler, "drop_last", False))}
    name = type(sampler).__name__
    if name == "SequentialSampler":
        return False, None
    if name == "RandomSampler" and not getattr(sampler, "replacement", False):
        return True, None
    raise ConfigError(
        f"cpuwise DataLoader: expected sampler None, RandomSampler, SequentialSampler or DistributedSampler, "
        f"found {name}; fix: use shuffle=True/False, or cpuwise.data.from_sequence(...) with your own "
        "index order."
    )


def _distributed_world() -> int:
    """The world size of an initialised torch.distributed group, else 1 (torch is imported by the
    caller's script already: this module is the torch adapter)."""
    torch = require("torch", extra="torch")
    dist = torch.distributed
    return int(dist.get_world_size()) if dist.is_available() and dist.is_initialized() else 1
