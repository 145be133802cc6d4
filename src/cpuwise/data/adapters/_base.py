"""What every adapter's iterable passes through to the dataset it wraps, and the one-batch-ahead loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from cpuwise.data.stages._base import materialized


class Wrapped:
    """len(), set_epoch, state_dict / load_state_dict and stats() delegate to `self.dataset`.

    `_ahead(place)` iterates the dataset placing batch i+1 (an asynchronous copy to a device) before
    handing out batch i; while it runs, state_dict() reports the state after the last batch handed
    out, so a resume neither skips nor repeats the batch that was placed ahead."""

    def __init__(self, ds: Any) -> None:
        self.dataset = ds
        self._pending_state: Any = None
        self._lookahead = False

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def state_dict(self) -> Any:
        return materialized(self._pending_state) if self._lookahead else self.dataset.state_dict()

    def load_state_dict(self, state: Any) -> None:
        self.dataset.load_state_dict(state)

    def stats(self) -> Any:
        return self.dataset.stats()

    def _ahead(self, place: Callable[[Any], Any],
               before_yield: Callable[[Any], None] | None = None) -> Iterator[Any]:
        # the state after every batch is kept: an O(1) snapshot where the dataset offers one
        snapshot = getattr(self.dataset, "state_snapshot", None) or getattr(self.dataset, "state_dict", None)
        source = iter(self.dataset)

        def pull() -> tuple[bool, Any]:
            state = snapshot() if snapshot is not None else None  # = state after the previous batch
            try:
                batch = next(source)
            except StopIteration:
                return False, state
            return True, (place(batch), state)

        self._lookahead = True
        try:
            ok, item = pull()
            while ok:
                current = item[0]
                if before_yield is not None:
                    before_yield(current)  # e.g. make the consumer's stream wait for this copy only
                ok, item = pull()  # start placing the next batch before the caller's step runs
                self._pending_state = item[1] if ok else item
                yield current
        finally:
            self._lookahead = False
