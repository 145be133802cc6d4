"""Ray Data backend: run a cpuwise pipeline's maps on a Ray cluster, and consume a Ray Dataset.

    ray.init(address="auto")                      # a real cluster; ray.init(num_cpus=8) locally
    ray_ds = ds.to_ray()                          # source listing, maps, filters -> ray.data.Dataset
    for images, labels in cd.from_ray(ray_ds):    # batched as ds batches
        ...
    shards = cd.from_ray(ray_ds, splits=4)        # one cpuwise Dataset per training rank

`to_ray()` runs the cheap front of the pipeline (source, shuffle, shard, take: the listing of one
epoch) on the driver, then each fused map group and each filter becomes one `map_batches` whose
batch size and task concurrency come from cpuwise's own measurement of that stage (worker seconds
per item and output bytes, see `plan_stages`): batches of ~0.25 s of work within 64 MiB, and the
cluster's CPUs shared among the stages in proportion to their cost. A trailing `batch()` is applied
by `from_ray`. The same code runs on a laptop (`ray.init(num_cpus=...)`) and on a cluster
(`ray.init(address=...)`): CPU nodes decode, the training node consumes the stream.

What holds on Ray, and what does not (Ray Data schedules tasks, cpuwise does not):
- **Items**: every item of the listing goes through the maps exactly once per run; a task whose
  worker dies is retried (Ray Data's default for tasks: without limit), so no item is lost.
  Random maps draw from `sample_rng(seed, epoch, position in the listing)`: the same numbers as
  the local pipeline for maps before any filter, so the multiset of outputs is the local one.
- **Order**: rows arrive in the order tasks finish, not the listing's, unless
  `ray.data.DataContext.get_current().execution_options.preserve_order = True`.
- **Resume**: a `from_ray` pipeline resumes from a state saved at an epoch boundary. Mid-epoch
  states are refused (StateError) unless preserve_order is set: only then is "the first k rows" the
  same set on the next run. The elastic, exactly-once resume of `.shard()` is cpuwise's own, local.
- **Epochs**: a Ray Dataset is one epoch's listing: `to_ray(epoch=e)` per epoch reshuffles.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cpuwise._optional import require
from cpuwise.data._engine.chunk import Failed, MapFn, Skipped, run_chunk
from cpuwise.data._naming import sample_name
from cpuwise.data._runtime.build import build
from cpuwise.data._tree import nbytes
from cpuwise.data.dataset import Dataset
from cpuwise.data.stages._base import Spec
from cpuwise.data.stages._lockstep import Dropped
from cpuwise.data.stages.batch import BatchSpec
from cpuwise.data.stages.filter import FilterSpec, FilterStage
from cpuwise.data.stages.map import MapSpec, MapStage
from cpuwise.data.stages.prefetch import PrefetchSpec
from cpuwise.data.stages.shard import ShardSpec
from cpuwise.data.stages.shuffle import ShuffleSpec
from cpuwise.data.stages.source import SourceSpec
from cpuwise.data.stages.take import TakeSpec
from cpuwise.errors import ConfigError, SampleError

__all__ = ["RayStagePlan", "from_ray", "plan_stages", "ray_plan", "to_ray"]

INDEX = "__cpuwise_index"  # the column with each row's position in the epoch's listing
TARGET_TASK_S = 0.25  # worker seconds per map_batches batch: amortises Ray's per-task cost (~ms)
MAX_BATCH = 4096
MAX_BATCH_BYTES = 64 << 20  # Ray Data's default target block size is 128 MiB; stay well under it
PROBE_ITEMS = 16  # items each stage is timed on when the pipeline has no measurements yet

# a Dataset to_ray() made -> (the batch/prefetch from_ray applies, the plan of each stage)
_MADE: weakref.WeakKeyDictionary[Any, tuple[list[Spec], list[RayStagePlan]]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class RayStagePlan:
    """How one cpuwise stage runs on Ray, and the measurement it was chosen from."""

    name: str
    per_item_s: float  # worker seconds per item (cpuwise's measurement)
    item_bytes: int  # bytes of one output item
    batch_size: int
    concurrency: int


def plan_stages(names: Sequence[str], per_item_s: Sequence[float], item_bytes: Sequence[int], cpus: float,
                items: int) -> list[RayStagePlan]:
    """Batch size and concurrency of each map_batches from cpuwise's per-stage measurements (pure).

    Batch: ~TARGET_TASK_S of work, at most MAX_BATCH_BYTES of output and MAX_BATCH rows, and no
    more than the listing split over the stage's tasks. Concurrency: the cluster's CPUs shared in
    proportion to each stage's seconds per item (every stage gets at least one task).
    """
    total = sum(max(t, 1e-7) for t in per_item_s) or 1.0
    out = []
    for name, t, b in zip(names, per_item_s, item_bytes, strict=True):
        t = max(t, 1e-7)
        conc = max(1, round(cpus * t / total))
        size = min(MAX_BATCH, max(1, int(TARGET_TASK_S / t)), max(1, MAX_BATCH_BYTES // max(1, b)),
                   max(1, math.ceil(max(1, items) / conc)))
        out.append(RayStagePlan(name, t, int(b), size, conc))
    return out


def _front(chain: Sequence[Spec]) -> tuple[list[Spec], list[Spec], list[Spec]]:
    """(listing, middle, tail): the cheap front run on the driver, the maps and filters for Ray, and
    the batch/prefetch that from_ray applies. Anything else is a ConfigError naming it."""
    i = 0
    while i < len(chain) and isinstance(chain[i], (SourceSpec, ShuffleSpec, ShardSpec, TakeSpec)):
        i += 1
    j = i
    while j < len(chain) and isinstance(chain[j], (MapSpec, FilterSpec)):
        j += 1
    tail = list(chain[j:])
    bad = [s.describe() for s in tail if not isinstance(s, (BatchSpec, PrefetchSpec))]
    if bad or sum(isinstance(s, BatchSpec) for s in tail) > 1:
        raise ConfigError(
            "to_ray: expected source -> shuffle/shard/take -> maps and filters -> batch, found "
            f"{bad or [s.describe() for s in tail]} after the maps. Fix: keep cache/repeat/take/shuffle "
            "before the maps, or apply them to the Dataset that cd.from_ray() returns."
        )
    return list(chain[:i]), list(chain[i:j]), tail


def _columns(samples: Sequence[Any]) -> dict[str, np.ndarray]:
    """Samples -> Ray columns: a tuple's fields as f0, f1, ..., a dict's keys, else one 'item'."""
    first = samples[0]
    if isinstance(first, tuple):
        keys = [f"f{k}" for k in range(len(first))]
        cols = {key: [s[k] for s in samples] for k, key in enumerate(keys)}
    elif isinstance(first, dict) and all(isinstance(k, str) for k in first):
        cols = {k: [s[k] for s in samples] for k in first}
    else:
        cols = {"item": list(samples)}
    return {k: _array(v) for k, v in cols.items()}


def _array(values: list[Any]) -> np.ndarray:
    if values and isinstance(values[0], np.ndarray):
        if all(v.shape == values[0].shape and v.dtype == values[0].dtype for v in values):
            return np.stack(values)
    elif values and all(isinstance(v, (int, float, str, bytes, np.generic)) for v in values):
        return np.asarray(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _samples(batch: dict[str, Any]) -> list[Any]:
    """Ray columns (a batch or one row) -> samples, the inverse of _columns."""
    keys = [k for k in batch if k != INDEX]
    n = len(batch[INDEX])
    plain = [{k: _scalar(batch[k][i]) for k in keys} for i in range(n)]
    return [_sample(row) for row in plain]


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _sample(row: dict[str, Any]) -> Any:
    keys = [k for k in row if k != INDEX]
    if keys == ["item"]:
        return row["item"]
    if keys and all(k == f"f{i}" for i, k in enumerate(keys)):
        return tuple(row[k] for k in keys)
    return {k: row[k] for k in keys}


class _RayStage:
    """One fused map group or one filter, run by Ray on a batch of rows (pickled to the workers)."""

    def __init__(self, fns: list[MapFn] | None, pred: Any, on_error: str, epoch: int, name: str) -> None:
        self.fns, self.pred, self.on_error, self.epoch, self.name = fns, pred, on_error, epoch, name

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        index = [int(i) for i in batch[INDEX]]
        keep_index: list[int] = []
        out: list[Any] = []
        for i, sample in zip(index, _samples(batch), strict=True):
            if self.fns is not None:
                (y,), _ = run_chunk(self.fns, [sample], i, self.epoch)
                if isinstance(y, (Skipped, Dropped)):
                    continue
                if isinstance(y, Failed):
                    raise SampleError(f"stage '{self.name}' failed on sample {y.name!r} (index {i} of "
                                      f"epoch {self.epoch}) on Ray: {y.error}. Fix: repair or remove the "
                                      f"sample, or pass on_error='skip'.\n{y.tb}", sample=y.name,
                                      stage=self.name)
            else:
                try:
                    if not self.pred(sample):
                        continue
                except Exception as exc:
                    if self.on_error == "skip":
                        continue
                    name = sample_name(sample)
                    raise SampleError(f"stage '{self.name}' failed on sample {name!r} on Ray: "
                                      f"{type(exc).__name__}: {exc}. Fix: correct the predicate, or pass "
                                      "on_error='skip'.", sample=name, stage=self.name) from exc
                y = sample
            out.append(y)
            keep_index.append(i)
        if not out:
            return {INDEX: np.zeros(0, dtype=np.int64)}
        return {INDEX: np.asarray(keep_index, dtype=np.int64), **_columns(out)}


def _stages(chain: Sequence[Spec], budget: Any, epoch: int) -> list[_RayStage]:
    """The map groups and filters as the local pipeline builds them (with the same fused groups and
    random seeds), in order. Only the middle of the chain has maps and filters (see _front)."""
    out = []
    for stage in build(chain, budget).top.stages():  # built, never started: no pool, no thread
        if isinstance(stage, MapStage):
            out.append(_RayStage(list(stage.fns), None, "raise", epoch, stage.name))
        elif isinstance(stage, FilterStage):
            out.append(_RayStage(None, stage.pred, stage.on_error, epoch, stage.name))
    return out


def _measure(stages: list[_RayStage], listing: list[Any], probe: int) -> tuple[list[float], list[int]]:
    """Seconds per item and output bytes of each stage, timed by cpuwise's own chunk runner on the
    first `probe` items (the same call the local map workers make)."""
    items = listing[:probe]
    secs, sizes = [], []
    for st in stages:
        t0 = time.perf_counter()
        batch = {INDEX: np.arange(len(items), dtype=np.int64), **(_columns(items) if items else {})}
        result = st(batch) if items else {INDEX: np.zeros(0)}
        dt = time.perf_counter() - t0
        kept = _samples(result) if len(result[INDEX]) else []
        secs.append(dt / max(1, len(items)))
        sizes.append(nbytes(kept[0]) if kept else 64)
        items = kept or items
    return secs, sizes


def to_ray(ds: Dataset, *, epoch: int | None = None, probe: int = PROBE_ITEMS) -> Any:
    """This pipeline's epoch as a `ray.data.Dataset` (see the module docstring for what holds).

    Args:
        epoch: the epoch whose listing (shuffle order) to use; default the pipeline's next one.
        probe: items each stage is timed on, to size its batches and concurrency.
    """
    ray = require("ray", extra="ray", purpose="Dataset.to_ray()")
    rd = require("ray.data", extra="ray")
    if not ray.is_initialized():
        ray.init()  # a local Ray on this machine, as ray.data itself would start
    chain = ds.specs()
    front, middle, tail = _front(chain)
    e = ds.state_dict()["epoch"] if epoch is None else int(epoch)
    listing_ds = Dataset(front[0])
    for spec in front[1:]:
        listing_ds = Dataset(spec, listing_ds)
    listing_ds.set_epoch(e)
    listing = list(listing_ds)
    stages = _stages(chain, ds.budget(), e)
    secs, sizes = _measure(stages, listing, probe)
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    plans = plan_stages([s.name for s in stages], secs, sizes, cpus, len(listing))
    rows = [{INDEX: i, **_row(x)} for i, x in enumerate(listing)]
    # blocks of about one batch, and at least as many as the widest stage runs tasks
    smallest = min((p.batch_size for p in plans), default=256)
    widest = max((p.concurrency for p in plans), default=1)
    blocks = max(1, min(len(rows), max(math.ceil(len(rows) / smallest), widest)))
    out = rd.from_items(rows, override_num_blocks=blocks)
    for st, plan in zip(stages, plans, strict=True):  # Ray Data retries a task whose worker died
        out = out.map_batches(st, batch_size=plan.batch_size, batch_format="numpy",
                              compute=rd.TaskPoolStrategy(size=plan.concurrency))
    _MADE[out] = (tail, plans)
    return out


def ray_plan(ray_ds: Any) -> list[RayStagePlan]:
    """The batch size and concurrency `to_ray()` chose for each stage, with its measurement."""
    return list(_MADE[ray_ds][1]) if ray_ds in _MADE else []


def _row(sample: Any) -> dict[str, Any]:
    """One listing item as a Ray row (the layout _columns gives a batch)."""
    if isinstance(sample, tuple):
        return {f"f{k}": v for k, v in enumerate(sample)}
    if isinstance(sample, dict) and all(isinstance(k, str) for k in sample):
        return dict(sample)
    return {"item": sample}


def from_ray(source: Any, *, splits: int | None = None, batch: bool = True) -> Any:
    """A cpuwise Dataset over a Ray Dataset (or one `DataIterator` of a streaming_split).

    Args:
        source: a `ray.data.Dataset` (from `to_ray()` or any Ray pipeline) or a `DataIterator`.
        splits: n: `streaming_split(n, equal=True)` into n Datasets, one per training rank (each
            must be consumed at the same time, e.g. by its own Ray Train worker or actor).
        batch: apply the `batch()` (and prefetch) of the pipeline `to_ray()` was called on.
    """
    rd = require("ray.data", extra="ray", purpose="cd.from_ray()")
    if splits is not None:
        if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
            raise ConfigError(f"from_ray: expected splits an int >= 1, found {splits!r}. Fix: splits=4.")
        if not isinstance(source, rd.Dataset):
            raise ConfigError("from_ray: splits needs a ray.data.Dataset, found a "
                              f"{type(source).__name__}. Fix: pass the Dataset itself.")
        tail = _MADE[source][0] if batch and source in _MADE else []
        return [_wrap(it, tail) for it in source.streaming_split(splits, equal=True)]
    if not isinstance(source, (rd.Dataset, rd.DataIterator)):
        raise ConfigError(f"from_ray: expected a ray.data.Dataset or DataIterator, found "
                          f"{type(source).__name__}. Fix: cd.from_ray(ds.to_ray()).")
    made = batch and isinstance(source, rd.Dataset) and source in _MADE
    return _wrap(source, _MADE[source][0] if made else [])


def _wrap(source: Any, tail: list[Spec]) -> Dataset:
    rd = require("ray.data", extra="ray")
    ordered = bool(rd.DataContext.get_current().execution_options.preserve_order)

    def rows() -> Any:
        for row in source.iter_rows():
            yield _sample({k: _scalar(v) for k, v in row.items()})

    ds = Dataset(SourceSpec("from_ray", factory=rows, ordered=ordered))
    for spec in tail:
        ds = Dataset(spec, ds)
    return ds
