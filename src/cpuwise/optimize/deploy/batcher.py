"""Batch concurrent single requests into one model call: the serving side of dynamic padding."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from cpuwise.optimize.io import Feed, SequenceSpec, stack, trim


class MicroBatcher:
    """Batches concurrent single requests: waits up to `max_wait_ms` for up to `max_batch` of them.

    mb = MicroBatcher(predict_feed, max_batch=16, max_wait_ms=2, spec=spec)
    y = mb.submit({"input_ids": ids, "attention_mask": mask}).result()
    mb.close()
    """

    def __init__(
        self,
        run: Callable[[Feed], np.ndarray],
        *,
        max_batch: int = 16,
        max_wait_ms: float = 2.0,
        spec: SequenceSpec | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self._spec = spec
        self._q: queue.Queue[tuple[Feed, Future[np.ndarray]] | None] = queue.Queue()
        self.batches_run = 0
        self._thread = threading.Thread(target=self._loop, name="cpuwise-microbatcher", daemon=True)
        self._thread.start()

    def submit(self, feed: Feed) -> Future[np.ndarray]:
        """Queue one request; the future holds its rows of the batch's output."""
        fut: Future[np.ndarray] = Future()
        self._q.put((feed, fut))
        return fut

    def close(self) -> None:
        """Serve what is queued, then stop the batching thread."""
        self._q.put(None)
        self._thread.join()

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            items = [item]
            deadline = time.perf_counter() + self.max_wait
            stop = False
            while len(items) < self.max_batch:
                try:
                    nxt = self._q.get(timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                items.append(nxt)
            self._serve(items)
            if stop:
                return

    def _serve(self, items: list[tuple[Feed, Future[np.ndarray]]]) -> None:
        feeds = [f for f, _ in items]
        sizes = [len(next(iter(f.values()))) for f in feeds]
        try:
            batch = stack(feeds, self._spec)
            if self._spec is not None:
                batch = trim(batch, self._spec)
            out = self._run(batch)
            self.batches_run += 1
        except Exception as exc:  # noqa: BLE001 - the error goes to every waiting caller
            for _, fut in items:
                fut.set_exception(exc)
            return
        start = 0
        for (_, fut), k in zip(items, sizes, strict=True):
            fut.set_result(out[start : start + k])
            start += k
