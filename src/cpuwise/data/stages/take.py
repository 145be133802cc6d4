"""take: the first n items of each epoch (`ds.take(100)` for a quick run)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from cpuwise.data.stages._base import BuildContext, Spec, Stage, require_upstream, state_int


@dataclass(frozen=True, eq=False)
class TakeSpec(Spec):
    """take(n): the first n items of each epoch."""

    n: int
    kind: ClassVar[str] = "take"

    def describe(self) -> str:
        return f"take({self.n})"

    def length(self, upstream: int | None) -> int | None:
        return None if upstream is None else min(self.n, upstream)

    def build(self, upstream: Stage | None, ctx: BuildContext) -> Stage:
        return TakeStage(require_upstream(upstream, self), self.n)


class TakeStage(Stage):
    """Passes the epoch's first `n` items through, then ends the epoch without reading further."""

    COUNT_KEY = "count"
    kind = "take"

    def __init__(self, upstream: Stage, n: int) -> None:
        super().__init__(f"take({n})", upstream)
        self.n = n
        self._count = 0

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        self.reset_upstream(initial_state)
        self._count = 0
        if initial_state is not None:
            self._count = state_int(initial_state, self.COUNT_KEY, self.name, 0, self.n)

    def next(self) -> Any:
        assert self.upstream is not None
        if self._count >= self.n:
            raise StopIteration
        item = self.upstream.__next__()
        self._count += 1
        return item

    def get_state(self) -> dict[str, Any]:
        assert self.upstream is not None
        return {self.UPSTREAM_KEY: self.upstream.get_state(), self.COUNT_KEY: self._count}
