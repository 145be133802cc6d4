"""repeat: run the upstream pipeline n times (None = forever), each pass a new epoch upstream."""

from __future__ import annotations

from typing import Any

from cpuwise.data.stage import Stage


class EpochClock:
    """The epoch a stage sees. The pipeline owns the root clock; each repeat() adds a pass counter,
    so stages above a repeat reshuffle and redraw random transforms on every pass."""

    PASS_SPAN = 1 << 20  # passes per outer epoch when repeat(None) runs forever

    def __init__(self, parent: EpochClock | None = None, n: int | None = None) -> None:
        self.parent, self.n = parent, n
        self.value = 0  # the root's epoch, or this repeat's pass

    def __call__(self) -> int:
        if self.parent is None:
            return self.value
        return self.parent() * (self.n or self.PASS_SPAN) + self.value


class RepeatStage(Stage):
    PASS_KEY = "pass"
    kind = "repeat"

    def __init__(self, upstream: Stage, n: int | None, clock: EpochClock) -> None:
        super().__init__(f"repeat({'' if n is None else n})", upstream)
        self.n, self.clock = n, clock

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        assert self.upstream is not None
        self.clock.value = 0 if initial_state is None else int(initial_state[self.PASS_KEY])
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
