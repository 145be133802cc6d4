"""Scoring outputs against the reference."""

from __future__ import annotations

import numpy as np

from cpuwise.optimize.evaluate import accuracy_metric, score_outputs


def test_embedding_cosine_mean_and_min() -> None:
    ref = np.eye(3, dtype=np.float32)
    out = ref.copy()
    out[2] = [0, 1, 1]
    s = score_outputs(out, ref, "embedding")
    assert (
        s.valid
        and np.isclose(s.extra["cosine_min"], 1 / np.sqrt(2))
        and np.isclose(s.value, (2 + 1 / np.sqrt(2)) / 3)
    )


def test_classifier_top1_agreement_and_metric() -> None:
    ref = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32)
    out = np.array([[1, 0], [0, 1], [0, 1], [0, 1]], dtype=np.float32)
    assert score_outputs(out, ref, "classifier").value == 0.75
    labels = np.array([0, 1, 1, 1])
    assert score_outputs(out, ref, "classifier", metric=accuracy_metric, labels=labels).value == 1.0


def test_nan_and_shape_mismatch_are_invalid() -> None:
    ref = np.ones((2, 3), dtype=np.float32)
    bad = ref.copy()
    bad[0, 0] = np.nan
    assert not score_outputs(bad, ref, "embedding").valid
    assert "NaN" in score_outputs(bad, ref, "embedding").reason
    assert not score_outputs(np.ones((2, 4)), ref, "generic").valid
