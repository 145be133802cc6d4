"""How close a candidate's outputs are to the reference: pure functions over numpy arrays.

- embeddings: cosine similarity per row to the FP32 reference (mean and min);
- classifiers: top-1 agreement with the FP32 reference;
- a user metric on labelled data: `metric(outputs, labels) -> float` (higher is better).

`Score.value` is what the budget is checked against; NaN/inf outputs give `Score.valid = False`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

TASKS = ("embedding", "classifier", "generic")


@dataclass(frozen=True)
class Score:
    """How close a candidate's outputs are to the reference (higher is better), or why they are invalid."""

    value: float  # higher is better; compared with the reference's value for the budget
    name: str  # "cosine_mean", "top1_agreement", "metric", "neg_max_abs_err"
    extra: dict[str, float] = field(default_factory=dict)  # e.g. {"cosine_min": 0.98}
    valid: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cosine_rows(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `out` with the same row of `ref` (rows flattened)."""
    a = out.reshape(len(out), -1).astype(np.float64)
    b = ref.reshape(len(ref), -1).astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(denom, 1e-12)


def score_outputs(
    out: np.ndarray,
    ref: np.ndarray,
    task: str,
    *,
    metric: Callable[[np.ndarray, np.ndarray], float] | None = None,
    labels: np.ndarray | None = None,
) -> Score:
    """Score a candidate's outputs against the reference outputs (or the labels with `metric`)."""
    if out.shape != ref.shape:
        return Score(
            float("nan"), "shape", valid=False, reason=f"output shape {out.shape} != reference {ref.shape}"
        )
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).sum())
        return Score(float("nan"), "nonfinite", valid=False, reason=f"{bad} NaN/inf values in the outputs")
    if metric is not None:
        if labels is None:
            raise ValueError("a metric needs labels: pass eval_labels together with metric")
        value = float(metric(out, labels))
        return Score(
            value,
            "metric",
            valid=bool(np.isfinite(value)),
            reason="" if np.isfinite(value) else "metric is NaN",
        )
    if task == "embedding":
        cos = cosine_rows(out, ref)
        return Score(float(cos.mean()), "cosine_mean", {"cosine_min": float(cos.min())})
    if task == "classifier":
        agree = out.reshape(len(out), -1).argmax(1) == ref.reshape(len(ref), -1).argmax(1)
        return Score(float(agree.mean()), "top1_agreement")
    err = float(np.abs(out - ref).max())
    return Score(-err, "neg_max_abs_err", {"max_abs_err": err})


def accuracy_metric(out: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of logits against integer labels (a ready-made `metric`)."""
    return float((out.reshape(len(out), -1).argmax(1) == np.asarray(labels).reshape(-1)).mean())
