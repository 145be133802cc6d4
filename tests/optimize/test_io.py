"""Dynamic padding, length bucketing and the micro-batcher."""

from __future__ import annotations

import threading

import numpy as np

from cpuwise.optimize.deploy.batcher import MicroBatcher
from cpuwise.optimize.io import (
    SequenceSpec,
    bucket_length,
    detect_sequence_spec,
    lengths,
    plan_batches,
    run_batched,
    stack,
    trim,
)

SPEC = SequenceSpec(mask="attention_mask", sequence_inputs=("input_ids", "attention_mask"))


def padded(lens: list[int], width: int = 32) -> dict[str, np.ndarray]:
    ids = np.zeros((len(lens), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lens):
        ids[i, :n] = np.arange(1, n + 1) + 100 * i
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


def masked_sum(feed: dict[str, np.ndarray]) -> np.ndarray:
    """A 'model' whose output depends only on the real tokens (like masked mean pooling)."""
    return (feed["input_ids"] * feed["attention_mask"]).sum(1, keepdims=True).astype(np.float64)


def test_bucket_length() -> None:
    assert [bucket_length(n, 8) for n in (1, 8, 9, 23)] == [8, 8, 16, 24]
    assert bucket_length(30, 8, cap=28) == 28


def test_detect_spec_and_lengths() -> None:
    f = padded([3, 7, 1])
    spec = detect_sequence_spec(f)
    assert spec is not None and spec.mask == "attention_mask" and set(spec.sequence_inputs) == set(f)
    assert lengths(f, spec).tolist() == [3, 7, 1]
    assert detect_sequence_spec({"x": np.zeros((2, 3), np.float32)}) is None


def test_trim_cuts_padding_to_bucket() -> None:
    t = trim(padded([3, 9]), SPEC, multiple=8)
    assert t["input_ids"].shape == (2, 16)
    assert (masked_sum(t) == masked_sum(padded([3, 9]))).all()


def test_run_batched_restores_order_and_matches_unpadded() -> None:
    lens = [5, 30, 2, 17, 9, 1, 12]
    f = padded(lens)
    shapes: list[tuple[int, ...]] = []

    def run(b: dict[str, np.ndarray]) -> np.ndarray:
        shapes.append(b["input_ids"].shape)
        return masked_sum(b)

    out = run_batched(run, f, batch_size=3, spec=SPEC, multiple=8)
    assert np.array_equal(out, masked_sum(f))
    assert max(s[1] for s in shapes[:-1]) < 32  # short batches were not padded to the full width


def test_plan_batches_groups_similar_lengths() -> None:
    plan = plan_batches(np.array([9, 1, 5, 2]), 2)
    assert [sorted(p.tolist()) for p in plan] == [[1, 3], [0, 2]]


def test_stack_pads_rows_of_different_lengths() -> None:
    a, b = trim(padded([2]), SPEC, 1), trim(padded([5]), SPEC, 1)
    s = stack([a, b], SPEC)
    assert s["input_ids"].shape == (2, 5) and s["attention_mask"][0].tolist() == [1, 1, 0, 0, 0]


def test_microbatcher_batches_concurrent_requests() -> None:
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
