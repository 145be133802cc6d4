"""Where to decode: a pure function from measured rates to a CPU / GPU / hybrid split.

Model (all rates in images per second):
    c = one CPU worker's decode rate, W = the most workers the CPU budget allows, so C = c * W
    g = the GPU's decode rate as it costs training: 1/g seconds of training lost per image decoded
        (measured alone at first, then fitted from windows at different splits, `fit_gpu_cost`)
    t = the consumer's rate when it never waits for data (training alone on the GPU)
Decoding a fraction f of each batch on the GPU costs f / g seconds of GPU per image on top of the
1 / t the training needs, and leaves (1 - f) of the images to the CPU, so the delivered rate is
    R(f) = min(C / (1 - f), 1 / (1 / t + f / g)).
The first term grows with f and the second shrinks, so the best f is where they meet:
    f* = (1 - C / t) / (1 + C / g)        (f* <= 0: the CPU alone keeps up)
Workers are then sized for the CPU's share with HEADROOM, within W.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

HEADROOM = 1.15  # size CPU workers 15 % above the need: rates drift and stalls cost more than a core
GPU_ONLY_ABOVE = 0.95  # a CPU share under 5 % is not worth the workers it keeps busy


@dataclass(frozen=True)
class Placement:
    mode: str  # "cpu" | "gpu" | "hybrid"
    gpu_fraction: float
    workers: int
    expected_img_s: float
    why: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def delivered_rate(f: float, cpu_total: float, gpu_decode: float, consumer: float) -> float:
    """R(f) from the module docstring."""
    cpu = math.inf if f >= 1 else cpu_total / (1 - f)
    gpu = 1.0 / (1.0 / consumer + (f / gpu_decode if gpu_decode > 0 else (math.inf if f > 0 else 0)))
    return min(cpu, gpu)


def decide(cpu_per_worker: float, max_workers: int, gpu_decode: float | None, consumer: float,
           mode: str = "auto", cpu_cap: float | None = None) -> Placement:
    """The split that maximises the delivered rate, using as few CPU workers as that rate needs.

    Args:
        cpu_per_worker: images/s one CPU worker decodes (0 if unknown or no CPU decoder).
        max_workers: CPU workers the budget allows.
        gpu_decode: g above, images/s (None or 0: no GPU decoder).
        consumer: images/s the consumer takes when never starved.
        mode: "auto" picks; "cpu" / "gpu" force a side; "hybrid" forces a split (5 %..95 % on GPU).
        cpu_cap: images/s the CPU side was seen to deliver at most (when the consumer starved):
            caps c * max_workers where something other than the workers limits the CPU side.

    Example: decide(900, 12, 8500, 4000) -> Placement(mode="cpu", workers=6, ...).
    """
    c, w_max, t = max(0.0, cpu_per_worker), max(0, max_workers), max(consumer, 1e-9)
    g = float(gpu_decode or 0.0)
    cpu_total = c * w_max if cpu_cap is None else min(c * w_max, max(0.0, cpu_cap))
    if mode == "cpu" or g <= 0:
        w = _workers(t, c, w_max)
        return Placement("cpu", 0.0, w, min(t, c * w), _why_cpu(t, c, w, w_max, g <= 0, mode))
    if mode == "gpu" or cpu_total <= 0:
        rate = delivered_rate(1.0, 0.0, g, t)
        why = "decode='gpu' asked for" if mode == "gpu" else "no CPU decode capacity"
        return Placement("gpu", 1.0, 0, rate, f"{why}: the GPU decodes every image (decode rate "
                         f"{g:.0f} img/s, {rate:.0f} img/s expected alongside a {t:.0f} img/s consumer)")
    f = min(1.0, max(0.0, (1 - cpu_total / t) / (1 + cpu_total / g)))
    if mode == "auto" and f <= 0:
        w = _workers(t, c, w_max)
        return Placement("cpu", 0.0, w, min(t, c * w), _why_cpu(t, c, w, w_max, False, mode))
    if mode == "auto" and f >= GPU_ONLY_ABOVE:
        rate = delivered_rate(1.0, cpu_total, g, t)
        return Placement("gpu", 1.0, 0, rate,
                         f"CPU decodes only {cpu_total:.0f} img/s ({w_max} workers x {c:.0f}) of the "
                         f"consumer's {t:.0f}; the GPU (decode rate {g:.0f} img/s) takes every image "
                         f"(expect {rate:.0f} img/s)")
    f = min(0.95, max(0.05, f))
    rate = delivered_rate(f, cpu_total, g, t)
    w = _workers(rate * (1 - f), c, w_max)
    capped = "" if cpu_cap is None or cpu_cap >= c * w_max else f", seen capped at {cpu_cap:.0f}"
    return Placement("hybrid", round(f, 3), w, rate,
                     f"CPU tops out at {cpu_total:.0f} img/s ({w_max} workers x {c:.0f}{capped}) for a "
                     f"consumer of {t:.0f} img/s; decoding {f:.0%} on the GPU (its decode costs training "
                     f"1/{g:.0f} s per image) balances both sides at {rate:.0f} img/s")


def _workers(need: float, per_worker: float, w_max: int) -> int:
    if per_worker <= 0:
        return max(1, w_max)
    return max(1, min(w_max, math.ceil(need * HEADROOM / per_worker)))


def _why_cpu(t: float, c: float, w: int, w_max: int, no_gpu: bool, mode: str) -> str:
    if c * w_max < t:
        head = "no GPU decoder available" if no_gpu else "decode='cpu' asked for"
        return (f"{head}: {w_max} CPU workers x {c:.0f} img/s = {c * w_max:.0f} img/s, short of the "
                f"consumer's {t:.0f} img/s")
    return (f"CPU workers cover the consumer's {t:.0f} img/s: {w} of {w_max} workers at {c:.0f} img/s "
            "each, leaving the GPU to training")


def fit_gpu_cost(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(t, g) from windows of (fraction decoded on the GPU, consumer img/s while busy).

    Fits 1/rate = 1/t + f/g by least squares: t is the consumer alone, g the GPU decode rate *as it
    costs the training* (often far above its rate alone: nvJPEG overlaps with the model's kernels).
    None until the windows span at least 0.2 of f. A non-positive slope means no measurable cost.
    """
    if len(points) < 2:
        return None
    fs = [f for f, _ in points]
    if max(fs) - min(fs) < 0.2:
        return None
    ys = [1.0 / r for _, r in points]
    n = len(points)
    mf, my = sum(fs) / n, sum(ys) / n
    var = sum((f - mf) ** 2 for f in fs)
    slope = sum((f - mf) * (y - my) for f, y in zip(fs, ys, strict=True)) / var
    intercept = my - slope * mf
    if intercept <= 0:
        return None
    return 1.0 / intercept, (1.0 / slope if slope > 0 else 1e9)
