"""The micro-batcher: concurrent single requests served together, errors passed to every caller."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from cpuwise.optimize.deploy.batcher import MicroBatcher
from cpuwise.optimize.io import SequenceSpec, trim

SPEC = SequenceSpec(mask="attention_mask", sequence_inputs=("input_ids", "attention_mask"))


def test_microbatcher_batches_concurrent_requests(padded: Any, masked_sum: Any) -> None:
    calls: list[int] = []

    def run(b: dict[str, np.ndarray]) -> np.ndarray:
        calls.append(len(b["input_ids"]))
        return masked_sum(b)

    rows = [trim(padded([n]), SPEC, 1) for n in (3, 8, 1, 6, 4, 2, 7, 5)]
    results: dict[int, np.ndarray] = {}
    start = threading.Barrier(len(rows))
    with MicroBatcher(run, max_batch=8, max_wait_ms=200, spec=SPEC) as mb:

        def client(i: int) -> None:
            start.wait()
            results[i] = mb.submit(rows[i]).result(timeout=10)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(rows))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(calls) == len(rows) and len(calls) < len(rows)  # requests were served together
    for i, r in enumerate(rows):
        assert np.array_equal(results[i], masked_sum(r))


def test_microbatcher_passes_errors_to_callers() -> None:
    def boom(b: dict[str, np.ndarray]) -> np.ndarray:
        raise RuntimeError("model failed")

    with MicroBatcher(boom, max_batch=2, max_wait_ms=1) as mb:
        fut = mb.submit({"x": np.zeros((1, 2))})
        try:
            fut.result(timeout=5)
        except RuntimeError as exc:
            assert "model failed" in str(exc)
        else:  # pragma: no cover
            raise AssertionError("expected the model's error")
