"""The chainable Dataset: sources -> shuffle -> map -> filter -> batch -> prefetch -> cache/repeat.

A Dataset is an immutable description; every chained call returns a new Dataset that shares the
stages before it (and their warm worker pools). `iter(ds)` builds live stages and starts an epoch:
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

from cpuwise.data import specs as S
from cpuwise.data._naming import fn_name
from cpuwise.data.budget import (
    BACKENDS,
    ON_ERROR,
    Budget,
    check_choice,
    check_cpu_budget,
    check_positive_int,
    resolve,
)
from cpuwise.errors import ConfigError, StateError


class Dataset:
    """A pipeline description; iterate it, or chain more stages onto it."""

    def __init__(self, spec: S.Spec, parent: Dataset | None = None,
                 budget_opts: dict[str, Any] | None = None) -> None:
        self._spec = spec
        self._parent = parent
        inherited: dict[str, Any] = parent._budget_opts if parent is not None else {}
        self._budget_opts: dict[str, Any] = dict(inherited if budget_opts is None else budget_opts)
        self._epoch_next = 0
        self._pending: dict[str, Any] | None = None
        self._live: weakref.ref[Any] | None = None
        self._last: Any = None
        self._decisions: list[dict[str, Any]] = []

    # --- chaining -------------------------------------------------------------------------------
    def _then(self, spec: S.Spec) -> Dataset:
        return Dataset(spec, self)

    def shuffle(self, seed: int = 0, buffer_size: int = 10_000) -> Dataset:
        """Seeded shuffle, new order every epoch: a global permutation right after an indexable
        source, a window of `buffer_size` samples otherwise."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"shuffle: expected an int seed, found {seed!r}. Fix: shuffle(seed=0).")
        check_positive_int("shuffle buffer_size", buffer_size, "pass buffer_size=10000 or more")
        return self._then(S.ShuffleSpec(seed, buffer_size))

    def map(self, fn: Callable[..., Any], on_error: str = "raise", workers: int | str = "auto",
            backend: str = "auto", cpu_budget: float | None = None, name: str | None = None) -> Dataset:
        """Apply `fn` to every sample (as `fn(sample, rng)` when it needs random numbers).

        Args:
            on_error: "raise" (SampleError naming the sample and stage) or "skip" (counted in stats).
            workers: "auto" (autotuned within the CPU budget) or an int to pin the pool size.
            backend: "auto" (processes when fn pickles, else threads), "process", "thread", "inline".
            cpu_budget: cores this map may use (default: the pipeline's budget).
        """
        if not callable(fn):
            raise ConfigError(f"map: expected a callable, found {type(fn).__name__}. Fix: map(my_function).")
        check_choice("on_error", on_error, ON_ERROR)
        check_choice("backend", backend, BACKENDS)
        if workers != "auto":
            check_positive_int("workers", workers, "pass workers='auto' (autotuned) or a count >= 1")
        if cpu_budget is not None:
            check_cpu_budget(cpu_budget)
        return self._then(S.MapSpec(fn, on_error, workers, backend, cpu_budget, name or fn_name(fn)))

    def filter(self, pred: Callable[[Any], bool], on_error: str = "raise") -> Dataset:
        """Keep the samples for which `pred(sample)` is true."""
        if not callable(pred):
            raise ConfigError(f"filter: expected a callable, found {type(pred).__name__}. Fix: filter(fn).")
        check_choice("on_error", on_error, ON_ERROR)
        return self._then(S.FilterSpec(pred, on_error))

    def batch(self, n: int, drop_last: bool = False,
              collate: Callable[[list[Any]], Any] | None = None) -> Dataset:
        """Group `n` samples and collate them (tuples of stacked numpy arrays)."""
        check_positive_int("batch size", n, "pass batch(32) or another size >= 1")
        return self._then(S.BatchSpec(n, bool(drop_last), collate))

    def prefetch(self, depth: int | str = "auto", cpu_budget: float | None = None) -> Dataset:
        """Produce up to `depth` items ahead in a background thread ("auto": autotuned, RAM-capped)."""
        if depth != "auto":
            check_positive_int("prefetch depth", depth, "pass depth='auto' or a count >= 1")
        if cpu_budget is not None:
            check_cpu_budget(cpu_budget)
        ds = self._then(S.PrefetchSpec(None if depth == "auto" else int(depth), cpu_budget))
        if cpu_budget is not None:
            ds._budget_opts["cpu_budget"] = cpu_budget
        return ds

    def cache(self, path: str | None = None) -> Dataset:
        """Record the first full pass (in memory, or memory-mapped files under `path`) and serve
        later epochs from it; put random augmentation after the cache."""
        return self._then(S.CacheSpec(None if path is None else str(path)))

    def repeat(self, n: int | None = None) -> Dataset:
        """Run the pipeline `n` times (None: forever); each pass reshuffles."""
        if n is not None:
            check_positive_int("repeat n", n, "pass repeat() for forever or a count >= 1")
        return self._then(S.RepeatSpec(n))

    def with_budget(self, cpu_budget: float | None = None, ram_budget_bytes: int | None = None) -> Dataset:
        """The same pipeline limited to `cpu_budget` cores and `ram_budget_bytes` of buffers."""
        resolve(cpu_budget, ram_budget_bytes)  # validate now, with a clear error
        opts = {"cpu_budget": cpu_budget, "ram_budget_bytes": ram_budget_bytes}
        return Dataset(self._spec, self._parent, opts)

    # --- iteration ------------------------------------------------------------------------------
    def _chain(self) -> list[S.Spec]:
        out: list[S.Spec] = []
        ds: Dataset | None = self
        while ds is not None:
            out.append(ds._spec)
            ds = ds._parent
        return out[::-1]

    def budget(self) -> Budget:
        opts = dict(self._budget_opts)
        for spec in self._chain():
            if isinstance(spec, S.PrefetchSpec) and spec.cpu_budget is not None and "cpu_budget" not in opts:
                opts["cpu_budget"] = spec.cpu_budget
        return resolve(opts.get("cpu_budget"), opts.get("ram_budget_bytes"))

    def __iter__(self) -> Any:
        from cpuwise.data.pipeline import PipelineIterator

        old = self._live() if self._live is not None else None
        if old is not None and not old._finished and not old._closed:
            old.close()
            old._superseded = True
        state, self._pending = self._pending, None
        epoch = self._epoch_next if state is None else int(state["epoch"])
        self._epoch_next = epoch + 1
        it = PipelineIterator(self, epoch, state, self.budget())
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
        n: int | None = None
        for spec in self._chain():
            if isinstance(spec, S.SourceSpec):
                n = len(spec.seq) if spec.seq is not None else None
            elif isinstance(spec, S.MapSpec) and spec.on_error == "skip":
                n = None
            elif isinstance(spec, S.FilterSpec):
                n = None
            elif isinstance(spec, S.BatchSpec) and n is not None:
                n = n // spec.size if spec.drop_last else -(-n // spec.size)
            elif isinstance(spec, S.RepeatSpec):
                n = None if spec.n is None or n is None else n * spec.n
        return n

    def describe(self) -> str:
        return " -> ".join(s.describe() for s in self._chain())

    def __repr__(self) -> str:
        return f"Dataset({self.describe()})"

    @property
    def classes(self) -> list[str]:
        """Class names of a from_folder() source (index = label)."""
        src = self._chain()[0]
        if not isinstance(src, S.SourceSpec) or src.classes is None:
            raise AttributeError("classes: only from_folder() pipelines have class names")
        return list(src.classes)

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the pipeline is: mid-epoch (live iterator) or the start of the next epoch."""
        from cpuwise.data.build import fingerprint
        from cpuwise.data.pipeline import STATE_VERSION

        if self._pending is not None:
            return dict(self._pending)
        it = self._live() if self._live is not None else None
        if it is not None and not it._finished and not it._closed:
            return it.state_dict()
        return {"version": STATE_VERSION, "pipeline": fingerprint(self._chain()), "epoch": self._epoch_next,
                "stages": None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next iter(ds) resume from `state` (from state_dict() of this same pipeline)."""
        from cpuwise.data.build import fingerprint
        from cpuwise.data.pipeline import STATE_VERSION

        if not isinstance(state, dict) or "pipeline" not in state or "epoch" not in state:
            keys = sorted(state) if isinstance(state, dict) else []
            raise StateError(f"load_state_dict: expected a dict from ds.state_dict(), found "
                             f"{type(state).__name__} with keys {keys}. "
                             "Fix: pass what state_dict() returned.")
        if state.get("version") != STATE_VERSION:
            raise StateError(f"load_state_dict: expected state version {STATE_VERSION}, found "
                             f"{state.get('version')!r}. Fix: save and load with the same cpuwise version.")
        expected = fingerprint(self._chain())
        if list(state["pipeline"]) != expected:
            raise StateError(
                "load_state_dict: the state was saved from a different pipeline.\n"
                f"  expected stages: {expected}\n  found stages:    {list(state['pipeline'])}\n"
                "Fix: build the same pipeline (same stages, order, sizes and functions) before loading."
            )
        it = self._live() if self._live is not None else None
        if it is not None:
            it.close()
        self._pending = dict(state)
        self._epoch_next = int(state["epoch"])

    # --- reporting and lifecycle ----------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Per-stage time, wait ratios, the chosen config and autotune decisions (INTERFACES shape)."""
        if self._last is None:
            return {"pipeline": self.describe(), "epoch": self._epoch_next, "items_out": 0,
                    "consumer_wait_ratio": 0.0,
                    "config": {"workers": 0, "backend": "inline", "prefetch": 0, **self.budget().to_dict()},
                    "stages": [], "decisions": list(self._decisions)}
        return dict(self._last.stats())

    def worker_pids(self) -> list[int]:
        """Process ids of this pipeline's map workers (empty for thread/inline backends)."""
        pids: list[int] = []
        for spec in self._chain():
            if isinstance(spec, S.MapSpec):
                for box in spec.pools.values():
                    for pool in box:
                        pids.extend(pool.pids())
        return pids

    def close(self) -> None:
        """Stop the current iterator and shut down every worker pool of this pipeline."""
        it = self._live() if self._live is not None else None
        if it is not None:
            it.close()
        for spec in self._chain():
            if isinstance(spec, S.MapSpec):
                for box in spec.pools.values():
                    S._shutdown_box(box)

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- adapters (other modules) ---------------------------------------------------------------
    def to_torch(self, *args: Any, **kwargs: Any) -> Any:
        from cpuwise.data.adapters.torch import to_torch

        return to_torch(self, *args, **kwargs)

    def to_keras(self, *args: Any, **kwargs: Any) -> Any:
        from cpuwise.data.adapters.keras import to_keras

        return to_keras(self, *args, **kwargs)

    def to_jax(self, *args: Any, **kwargs: Any) -> Any:
        from cpuwise.data.adapters.jax import to_jax

        return to_jax(self, *args, **kwargs)

    def to_numpy(self, *args: Any, **kwargs: Any) -> Any:
        from cpuwise.data.adapters.jax import to_numpy

        return to_numpy(self, *args, **kwargs)
