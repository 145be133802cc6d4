"""repeat: run the upstream pipeline n times (None = forever), each pass a new epoch upstream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from cpuwise.data.stages._base import BuildContext, EpochClock, Spec, Stage, require_upstream, state_int


@dataclass(frozen=True, eq=False)
class RepeatSpec(Spec):
    """repeat(n): n passes (None: forever), each a new epoch for the stages upstream."""

    n: int | None  # passes; None: forever
    kind: ClassVar[str] = "repeat"

    def describe(self) -> str:
        return f"repeat({'' if self.n is None else self.n})"

    def length(self, upstream: int | None) -> int | None:
        return None if self.n is None or upstream is None else upstream * self.n

    def epoch_clock(self, downstream: EpochClock) -> EpochClock:
        # stages below a repeat() see the pass-extended epoch, so every pass reshuffles
        return EpochClock(downstream, self.n)

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        return RepeatStage(require_upstream(upstream, self), self.n, ctx.epoch)


class RepeatStage(Stage):
    """Runs its upstream `n` times, bumping the pass of the clock its upstream sees."""

    PASS_KEY = "pass"
    kind = "repeat"

    def __init__(self, upstream: Stage, n: int | None, clock: EpochClock) -> None:
        super().__init__(f"repeat({'' if n is None else n})", upstream)
        self.n, self.clock = n, clock

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        assert self.upstream is not None
        last = self.n if self.n is not None else EpochClock.PASS_SPAN  # n: every pass done
        self.clock.value = 0 if initial_state is None else state_int(initial_state, self.PASS_KEY, self.name,
                                                                      0, last)
        self.reset_upstream(initial_state)

    def next(self) -> Any:
        assert self.upstream is not None
        empty_passes = 0
        while self.n is None or self.clock.value < self.n:
            try:
                return self.upstream.__next__()
            except StopIteration:
                self.clock.value += 1
                empty_passes += 1
                if empty_passes > 1 or (self.n is not None and self.clock.value >= self.n):
                    break  # an empty upstream must not spin forever
                self.upstream.reset(None)
        raise StopIteration

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        return {self.PASS_KEY: self.clock.value, self.UPSTREAM_KEY: self.upstream.get_state()}
