"""filter: keep the samples for which `pred(sample)` is true."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from cpuwise.data._naming import fn_name, sample_name
from cpuwise.data.stages._base import BuildContext, Spec, Stage, require_upstream
from cpuwise.data.stages._lockstep import Dropped
from cpuwise.errors import SampleError


@dataclass(frozen=True, eq=False)
class FilterSpec(Spec):
    """filter(pred, on_error)."""

    pred: Callable[[Any], bool]
    on_error: str  # "raise" | "skip"
    kind: ClassVar[str] = "filter"

    def describe(self) -> str:
        return f"filter({fn_name(self.pred)})"

    def length(self, upstream: int | None) -> int | None:
        return None  # how many pass is known only after the epoch

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        return FilterStage(require_upstream(upstream, self), self.pred, self.on_error, ctx.in_lockstep)


class FilterStage(Stage):
    """Pulls until `pred` accepts an item; a failing predicate raises or skips (on_error).

    After a shard (`lockstep`), a rejected or skipped sample becomes a Dropped marker in its place,
    which the shard's PadStage replaces: every rank keeps one item per position of its share."""

    kind = "filter"

    def __init__(self, upstream: Stage, pred: Callable[[Any], bool], on_error: str,
                 lockstep: bool = False) -> None:
        super().__init__(f"filter({fn_name(pred)})", upstream)
        self.pred, self.on_error, self.lockstep = pred, on_error, lockstep

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        self.reset_upstream(initial_state)

    def next(self) -> Any:
        assert self.upstream is not None
        while True:
            item = self.upstream.__next__()
            if isinstance(item, Dropped):
                return item
            t0 = time.perf_counter()
            try:
                keep = self.pred(item)
            except Exception as exc:
                if self.on_error == "skip":
                    self.stats.skip(sample_name(item))
                    if self.lockstep:
                        return Dropped(sample_name(item))
                    continue
                raise SampleError(
                    f"stage '{self.name}' failed on sample {sample_name(item)!r}: "
                    f"{type(exc).__name__}: {exc}. Fix: correct the sample or the predicate, or pass "
                    "on_error='skip' to count and skip such samples.",
                    sample=sample_name(item), stage=self.name,
                ) from exc
            finally:
                self.stats.work_time_s += time.perf_counter() - t0
            if keep:
                return item
            if self.lockstep:
                return Dropped(sample_name(item))

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        return {self.UPSTREAM_KEY: self.upstream.get_state()}
