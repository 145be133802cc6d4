"""The chainable Dataset: sources -> shuffle -> map -> filter -> batch -> prefetch -> cache/repeat.

A Dataset is an immutable description: a chain of specs (cpuwise.data.stages), one per call. Every
chained call returns a new Dataset that shares the specs before it (and so their warm worker pools,
which the runtime keeps per spec). `iter(ds)` builds live stages and starts an epoch:
the epoch number advances on each new iteration (or is set with `set_epoch`), so shuffles and
random transforms change per epoch and are identical for any number of workers.

Example:
    ds = (cd.from_folder("train/").shuffle(seed=0)
            .map(cd.image.decode_crop(224), on_error="skip").batch(256).prefetch())
    for images, labels in ds: ...
    ckpt = ds.state_dict()          # mid-epoch, with workers in flight
    ds.load_state_dict(ckpt)        # the next iter(ds) yields exactly the rest
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from cpuwise._schema import Decision
from cpuwise.data._naming import fn_name
from cpuwise.data._runtime import elastic, shared, stats
from cpuwise.data._runtime.budget import (
    BACKENDS,
    ON_ERROR,
    Budget,
    check_choice,
    check_cpu_budget,
    check_positive_int,
    check_positive_seconds,
    resolve,
)
from cpuwise.data._runtime.build import fingerprint
from cpuwise.data._runtime.iterator import STATE_VERSION, PipelineIterator, check_top_level
from cpuwise.data.stages._base import Spec, materialized
from cpuwise.data.stages.batch import BatchSpec
from cpuwise.data.stages.cache import CacheSpec
from cpuwise.data.stages.filter import FilterSpec
from cpuwise.data.stages.map import MapSpec
from cpuwise.data.stages.prefetch import PrefetchSpec
from cpuwise.data.stages.repeat import RepeatSpec
from cpuwise.data.stages.shard import ShardSpec, default_world, drops, lockstep_start
from cpuwise.data.stages.shuffle import ShuffleSpec
from cpuwise.data.stages.source import SourceSpec
from cpuwise.data.stages.take import TakeSpec
from cpuwise.errors import ConfigError


class Dataset:
    """A pipeline description; iterate it, or chain more stages onto it."""

    def __init__(self, spec: Spec, parent: Dataset | None = None,
                 budget_opts: dict[str, Any] | None = None) -> None:
        self._spec = spec
        self._parent = parent
        inherited: dict[str, Any] = parent._budget_opts if parent is not None else {}
        self._budget_opts: dict[str, Any] = dict(inherited if budget_opts is None else budget_opts)
        self._epoch_next = 0
        self._pending: dict[str, Any] | None = None
        self._prepared: PipelineIterator | None = None  # built and checked by load_state_dict()
        self._live: weakref.ref[PipelineIterator] | None = None
        self._last: PipelineIterator | None = None
        self._decisions: list[Decision] = []

    # --- chaining: each method checks its arguments and records its stage's spec -----------------
    def _then(self, spec: Spec) -> Dataset:
        return Dataset(spec, self)

    def shuffle(self, seed: int = 0, buffer_size: int = 10_000) -> Dataset:
        """Seeded shuffle, new order every epoch: a global permutation right after an indexable
        source, a window of `buffer_size` samples otherwise."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"shuffle: expected an int seed, found {seed!r}. Fix: shuffle(seed=0).")
        check_positive_int("shuffle buffer_size", buffer_size, "pass buffer_size=10000 or more")
        return self._then(ShuffleSpec(seed, buffer_size))

    def map(self, fn: Callable[..., Any], on_error: str = "raise", workers: int | str = "auto",
            backend: str = "auto", cpu_budget: float | None = None, name: str | None = None,
            hang_timeout: float | None = None) -> Dataset:
        """Apply `fn` to every sample (as `fn(sample, rng)` when it needs random numbers).

        Args:
            on_error: "raise" (SampleError naming the sample and stage) or "skip" (counted in stats).
            workers: "auto" (autotuned within the CPU budget) or an int to pin the pool size.
            backend: "auto" (processes when fn pickles, else threads), "process", "thread", "inline".
            cpu_budget: cores this map may use (default: the pipeline's budget).
            hang_timeout: seconds a worker may spend on one sample before it counts as hung (default
                300): a hung worker process is named, killed and restarted, its tasks redone, and a
                sample that hangs twice is skipped (on_error="skip") or a WorkerError naming it; a
                hung thread is a WorkerError naming the sample. math.inf turns the check off.
        """
        if not callable(fn):
            raise ConfigError(f"map: expected a callable, found {type(fn).__name__}. Fix: map(my_function).")
        check_choice("on_error", on_error, ON_ERROR)
        check_choice("backend", backend, BACKENDS)
        if workers != "auto":
            check_positive_int("workers", workers, "pass workers='auto' (autotuned) or a count >= 1")
        if cpu_budget is not None:
            check_cpu_budget(cpu_budget)
        if hang_timeout is not None:
            check_positive_seconds("hang_timeout", hang_timeout, "pass hang_timeout=300 (the default) or "
                                   "another number of seconds > 0, or math.inf to turn the check off")
        return self._then(MapSpec(fn, on_error, workers, backend, cpu_budget, name or fn_name(fn),
                                  None if hang_timeout is None else float(hang_timeout)))

    def filter(self, pred: Callable[[Any], bool], on_error: str = "raise") -> Dataset:
        """Keep the samples for which `pred(sample)` is true."""
        if not callable(pred):
            raise ConfigError(f"filter: expected a callable, found {type(pred).__name__}. Fix: filter(fn).")
        check_choice("on_error", on_error, ON_ERROR)
        return self._then(FilterSpec(pred, on_error))

    def batch(self, n: int, drop_last: bool = False,
              collate: Callable[[list[Any]], Any] | None = None) -> Dataset:
        """Group `n` samples and collate them (tuples of stacked numpy arrays)."""
        check_positive_int("batch size", n, "pass batch(32) or another size >= 1")
        return self._then(BatchSpec(n, bool(drop_last), collate))

    def prefetch(self, depth: int | str = "auto", cpu_budget: float | None = None) -> Dataset:
        """Produce up to `depth` items ahead in a background thread ("auto": autotuned, RAM-capped).

        Args:
            cpu_budget: cores the whole pipeline may use, from this Dataset on.
        """
        if depth != "auto":
            check_positive_int("prefetch depth", depth, "pass depth='auto' or a count >= 1")
        if cpu_budget is not None:
            check_cpu_budget(cpu_budget)
        spec = PrefetchSpec(None if depth == "auto" else int(depth), cpu_budget)
        if cpu_budget is None:
            return self._then(spec)
        return Dataset(spec, self, {**self._budget_opts, "cpu_budget": cpu_budget})

    def cache(self, path: str | None = None) -> Dataset:
        """Record the first full pass (in memory, or memory-mapped files under `path`) and serve
        later epochs from it; put random augmentation after the cache."""
        return self._then(CacheSpec(None if path is None else str(path)))

    def repeat(self, n: int | None = None) -> Dataset:
        """Run the pipeline `n` times (None: forever); each pass reshuffles."""
        if n is not None:
            check_positive_int("repeat n", n, "pass repeat() for forever or a count >= 1")
        return self._then(RepeatSpec(n))

    def take(self, n: int) -> Dataset:
        """The first `n` items of each epoch (a quick run: `ds.take(100)`)."""
        check_positive_int("take n", n, "pass take(100) or another count >= 1")
        return self._then(TakeSpec(n))

    def shard(self, world_size: int | None = None, rank: int | None = None, *,
              drop_remainder: bool = False) -> Dataset:
        """This rank's share of every epoch, in lockstep with the other ranks of a distributed job.

        After `.shuffle(seed)`, each epoch is one global permutation of (seed, epoch) dealt
        round-robin (rank r takes positions r, r + W, ...): ranks are disjoint, run equal numbers
        of steps (the last round padded by wrap-around, or dropped with `drop_remainder=True`), and
        together see every item once per epoch. After a window shuffle or over an iterable source
        it deals by position in the stream, which every rank reads. Put it after the source and
        shuffle and before the expensive maps and `batch`; a sample that a later filter or
        `on_error="skip"` drops is replaced by the rank's previous one, so steps stay equal and one
        rank's `state_dict()` resumes the whole job, at any world size (elastic resume).

        Args:
            world_size, rank: default from an initialised torch.distributed group, else the
                WORLD_SIZE / RANK environment variables (torchrun), else 1 and 0.
            drop_remainder: drop the last, incomplete round instead of padding it.

        Example:
            ds = cd.from_folder("train/").shuffle(seed=0).shard().map(decode).batch(256)
        """
        if world_size is None or rank is None:
            w, r, where = default_world()
            world_size = w if world_size is None else world_size
            rank = r if rank is None else rank
        else:
            where = "the arguments"
        for name, value in (("world_size", world_size), ("rank", rank)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"shard: expected an int {name}, found {value!r}. Fix: shard(world_size=4, "
                                  "rank=0), or leave both to torch.distributed / torchrun.")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"shard: expected world_size >= 1 and 0 <= rank < world_size, found world_size="
                              f"{world_size} and rank={rank} (from {where}). Fix: pass the job's values.")
        specs = self.specs()
        if any(isinstance(s, ShardSpec) for s in specs):
            raise ConfigError("shard: expected one .shard() per pipeline, found a second. Fix: remove one.")
        batch = next((s for s in specs if isinstance(s, BatchSpec)), None)
        if batch is not None:
            raise ConfigError(f"shard: expected .shard() before .batch(), found it after {batch.describe()}. "
                              "Fix: ds.shard().batch(n), so every rank batches its own share.")
        return self._then(ShardSpec(world_size, rank, bool(drop_remainder)))

    def sharded(self, world_size: int | None = None, rank: int | None = None, *,
                drop_remainder: bool = False) -> Dataset:
        """This pipeline with `.shard(...)` put where it belongs: right after the source and a
        shuffle that follows it (through maps), so each rank decodes only its share. Returned
        unchanged when it already has a shard (the adapters use this under torch.distributed)."""
        if any(isinstance(s, ShardSpec) for s in self.specs()):
            return self
        nodes: list[Dataset] = []
        ds: Dataset | None = self
        while ds is not None:
            nodes.append(ds)
            ds = ds._parent
        nodes.reverse()
        at = 1
        for i, node in enumerate(nodes[1:], start=1):
            if not isinstance(node._spec, (MapSpec, ShuffleSpec)):
                break
            if isinstance(node._spec, ShuffleSpec):
                at = i + 1
        head = nodes[at - 1]
        out = head.shard(world_size, rank, drop_remainder=drop_remainder)
        for node in nodes[at:]:
            out = Dataset(node._spec, out, node._budget_opts)
        return out

    def with_budget(self, cpu_budget: float | None = None, ram_budget_bytes: int | None = None) -> Dataset:
        """The same pipeline limited to `cpu_budget` cores and `ram_budget_bytes` of buffers."""
        resolve(cpu_budget, ram_budget_bytes)  # validate now, with a clear error
        opts = {"cpu_budget": cpu_budget, "ram_budget_bytes": ram_budget_bytes}
        return Dataset(self._spec, self._parent, opts)

    # --- iteration ------------------------------------------------------------------------------
    def specs(self) -> list[Spec]:
        """The chain of stage descriptions, source first."""
        out: list[Spec] = []
        ds: Dataset | None = self
        while ds is not None:
            out.append(ds._spec)
            ds = ds._parent
        return out[::-1]

    _chain = specs  # the older name, which tests still read

    def budget(self) -> Budget:
        """The CPU cores and RAM bytes this pipeline may use."""
        return resolve(self._budget_opts.get("cpu_budget"), self._budget_opts.get("ram_budget_bytes"))

    def __iter__(self) -> PipelineIterator:
        old = self._live() if self._live is not None else None
        if old is not None and old.running:
            old.supersede()
        state, self._pending = self._pending, None
        prepared, self._prepared = self._prepared, None
        epoch = self._epoch_next if state is None else int(state["epoch"])
        self._epoch_next = epoch + 1
        if prepared is not None and state is not None:
            it = prepared
            it.restart_clock()
        else:
            it = PipelineIterator(self.specs(), epoch, state, self.budget(), self._decisions)
        self._live = weakref.ref(it)
        self._last = it
        return it

    def set_epoch(self, epoch: int) -> None:
        """Use `epoch` for the next iteration (shuffle order and random transforms depend on it)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ConfigError(f"set_epoch: expected an int >= 0, found {epoch!r}. Fix: ds.set_epoch(epoch).")
        self._epoch_next = epoch

    def __len__(self) -> int:
        n = self.length()
        if n is None:
            raise TypeError(f"the length of this pipeline is not known in advance ({self.describe()}): "
                            "a filter, on_error='skip', an iterable source or repeat() changes it")
        return n

    def length(self) -> int | None:
        """Number of items per epoch when known in advance, else None."""
        specs = self.specs()
        span = lockstep_start(specs)
        n: int | None = None
        for i, spec in enumerate(specs):
            if span is not None and span[0] <= i < span[1] and drops(spec):
                continue  # after a shard a dropped sample keeps its place (padded): the count holds
            n = spec.length(n)
        return n

    def describe(self) -> str:
        return " -> ".join(s.describe() for s in self.specs())

    def __repr__(self) -> str:
        return f"Dataset({self.describe()})"

    @property
    def classes(self) -> list[str]:
        """Class names of a from_folder() source (index = label)."""
        src = self.specs()[0]
        if not isinstance(src, SourceSpec) or src.classes is None:
            raise AttributeError("classes: only from_folder() pipelines have class names")
        return list(src.classes)

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the pipeline is: mid-epoch (live iterator) or the start of the next epoch."""
        return materialized(self.state_snapshot())

    def state_snapshot(self) -> dict[str, Any]:
        """`state_dict()` taken in O(1), for code that keeps the state after every batch (the
        adapters): costly parts (a shuffle window) stay lazy until `stages.materialized()` builds
        them or the dict is pickled. Keep only the latest snapshot: an old one pins an undo log."""
        if self._pending is not None:
            return dict(self._pending)
        it = self._live() if self._live is not None else None
        if it is not None and it.running:
            return it.state_snapshot()
        state = {"version": STATE_VERSION, "pipeline": fingerprint(self.specs()), "epoch": self._epoch_next,
                 "stages": None}
        record = elastic.shard_record(self.specs(), None)
        if record is not None:
            state[elastic.SHARD_KEY] = record
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next iter(ds) resume from `state` (from state_dict() of this same pipeline).

        Every field is checked now (a checkpoint is untrusted input): a state of another pipeline,
        version, or with a field out of range raises StateError naming it, and nothing changes.
        """
        check_top_level(state, fingerprint(self.specs()))
        state = elastic.rebase(self.specs(), state)  # a state of another rank or world size
        it = self._live() if self._live is not None else None
        if it is not None:
            it.close()
        if self._prepared is not None:
            self._prepared.close()
            self._prepared = None
        # build the stages and reset them from the state now: a bad field fails here, not at iter()
        prepared = None
        if state["stages"] is not None:
            prepared = PipelineIterator(self.specs(), state["epoch"], state, self.budget(), self._decisions)
        self._pending = dict(state)
        self._prepared = prepared
        self._epoch_next = int(state["epoch"])

    # --- reporting and lifecycle ----------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Per-stage time, wait ratios, the chosen config and autotune decisions: the dict form of
        cpuwise._schema.PipelineStats (the contract with `cpuwise doctor`)."""
        if self._last is not None:
            return self._last.stats()
        return stats.not_started(self.describe(), self._epoch_next, self.budget(), self._decisions).to_dict()

    def worker_pids(self) -> list[int]:
        """Process ids of this pipeline's map workers (empty for thread/inline backends)."""
        return [pid for pool in shared.pools_of(self.specs()) for pid in pool.pids()]

    def close(self) -> None:
        """Stop the current iterator and shut down every worker pool of this pipeline."""
        it = self._live() if self._live is not None else None
        if it is not None:
            it.close()
        shared.shutdown_pools(self.specs())

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- adapters -------------------------------------------------------------------------------
    # lazy: each adapter module imports this one (it wraps Datasets), and loads only when used
    def to_torch(self, *args: Any, **kwargs: Any) -> Any:
        """Batches as torch tensors on a device: see cpuwise.data.adapters.torch.to_torch."""
        from cpuwise.data.adapters.torch import to_torch  # lazy: see above (a cycle)

        return to_torch(self, *args, **kwargs)

    def to_keras(self, *args: Any, **kwargs: Any) -> Any:
        """A keras.utils.PyDataset: see cpuwise.data.adapters.keras.to_keras."""
        from cpuwise.data.adapters.keras import to_keras  # lazy: see above (a cycle)

        return to_keras(self, *args, **kwargs)

    def to_jax(self, *args: Any, **kwargs: Any) -> Any:
        """Batches as jax arrays on a device: see cpuwise.data.adapters.jax.to_jax."""
        from cpuwise.data.adapters.jax import to_jax  # lazy: see above (a cycle)

        return to_jax(self, *args, **kwargs)

    def to_ray(self, *args: Any, **kwargs: Any) -> Any:
        """This pipeline's maps and filters on Ray Data: see cpuwise.data.adapters.ray.to_ray."""
        from cpuwise.data.adapters.ray import to_ray  # lazy: see above (a cycle)

        return to_ray(self, *args, **kwargs)

    def to_numpy(self, *args: Any, **kwargs: Any) -> Any:
        """The numpy batches, reported to the doctor: see cpuwise.data.adapters.jax.to_numpy."""
        from cpuwise.data.adapters.jax import to_numpy  # lazy: see above (a cycle)

        return to_numpy(self, *args, **kwargs)
