"""Dynamic padding: real lengths, buckets, trimming, length-sorted batches that come back in order."""

from __future__ import annotations

from typing import Any

import numpy as np

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


def test_bucket_length() -> None:
    assert [bucket_length(n, 8) for n in (1, 8, 9, 23)] == [8, 8, 16, 24]
    assert bucket_length(30, 8, cap=28) == 28


def test_detect_spec_and_lengths(padded: Any) -> None:
    f = padded([3, 7, 1])
    spec = detect_sequence_spec(f)
    assert spec is not None and spec.mask == "attention_mask" and set(spec.sequence_inputs) == set(f)
    assert lengths(f, spec).tolist() == [3, 7, 1]
    assert detect_sequence_spec({"x": np.zeros((2, 3), np.float32)}) is None


def test_trim_cuts_padding_to_bucket(padded: Any, masked_sum: Any) -> None:
    t = trim(padded([3, 9]), SPEC, multiple=8)
    assert t["input_ids"].shape == (2, 16)
    assert (masked_sum(t) == masked_sum(padded([3, 9]))).all()


def test_run_batched_restores_order_and_matches_unpadded(padded: Any, masked_sum: Any) -> None:
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


def test_stack_pads_rows_of_different_lengths(padded: Any) -> None:
    a, b = trim(padded([2]), SPEC, 1), trim(padded([5]), SPEC, 1)
    s = stack([a, b], SPEC)
    assert s["input_ids"].shape == (2, 5) and s["attention_mask"][0].tolist() == [1, 1, 0, 0, 0]
